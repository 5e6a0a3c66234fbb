//! comment-service over real HTTP, with a test issuer and an in-memory bus
//! into which the tests publish user events as the user service would.

mod common;

use comment_service::Storage;
use common::{Service, author_of, token, users};
use serde_json::{Value, json};
use tessera_authn::test_util::TestIssuer;
use tessera_event_bus::memory::MemoryBus;
use tessera_user_sync::events::{UserDeleted, UserProfileUpdated, UserRegistered};

const WRITE: &str = "comments:write";

#[tokio::test]
async fn comments_carry_replica_names_that_follow_renames_and_deletions() {
    let idp = TestIssuer::start().await.unwrap();
    let bus = MemoryBus::new();
    let svc = Service::start(&idp, &bus, Storage::in_memory()).await;
    let users = users(&bus);
    let alice = token(&idp, "alice", WRITE);
    let bob = token(&idp, "bob", WRITE);
    let reader = token(&idp, "reader", "");

    // Bob is unknown to the replica: his name is null, not an error.
    let (status, first) = svc.post("p1", &bob, "first!").await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["post_id"], "p1");
    assert_eq!(first["text"], "first!");
    assert_eq!(
        first["author"],
        json!({ "id": "bob", "display_name": null })
    );
    assert!(first["id"].as_str().is_some_and(|id| !id.is_empty()));

    users
        .publish(UserRegistered::new("alice", 1, "Alice").email("alice@example.com"))
        .await
        .unwrap();
    users
        .publish(UserRegistered::new("bob", 1, "Bob"))
        .await
        .unwrap();
    let list = svc
        .eventually("p1", &reader, |l| {
            author_of(l, &first["id"])["display_name"] == "Bob"
        })
        .await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["text"], "first!");
    assert_eq!(
        list[0].get("post_id"),
        None,
        "list items are {{id, text, author}}"
    );

    let (status, second) = svc.post("p1", &alice, "hello").await;
    assert_eq!(status, 201);
    assert_eq!(
        second["author"],
        json!({ "id": "alice", "display_name": "Alice" })
    );
    let (_, elsewhere) = svc.post("p2", &alice, "another post").await;

    let list = svc.list("p1", &reader).await;
    let ids: Vec<&Value> = list.as_array().unwrap().iter().map(|c| &c["id"]).collect();
    assert_eq!(ids, [&first["id"], &second["id"]], "oldest first, only p1");
    assert_eq!(svc.list("p3", &reader).await, json!([]));

    // Rename: the list shows the new name once the event is applied.
    users
        .publish(UserProfileUpdated::new("alice", 2, "Alice Liddell"))
        .await
        .unwrap();
    svc.eventually("p1", &reader, |l| {
        author_of(l, &second["id"])["display_name"] == "Alice Liddell"
    })
    .await;
    users
        .publish(UserProfileUpdated::new("alice", 3, "A. Liddell"))
        .await
        .unwrap();
    svc.eventually("p1", &reader, |l| {
        author_of(l, &second["id"])["display_name"] == "A. Liddell"
    })
    .await;
    // A stale or duplicate event changes nothing.
    users
        .publish(UserRegistered::new("alice", 1, "Alice"))
        .await
        .unwrap();
    users
        .publish(UserProfileUpdated::new("alice", 3, "A. Liddell"))
        .await
        .unwrap();
    users
        .publish(UserProfileUpdated::new("alice", 2, "Alice Liddell"))
        .await
        .unwrap();
    common::idle(&bus).await;
    let list = svc.list("p1", &reader).await;
    assert_eq!(
        author_of(&list, &second["id"])["display_name"],
        "A. Liddell"
    );
    assert_eq!(author_of(&list, &first["id"])["display_name"], "Bob");

    // Bob deletes his account: his comments are anonymised, others untouched.
    users.publish(UserDeleted::new("bob", 2)).await.unwrap();
    let list = svc
        .eventually("p1", &reader, |l| author_of(l, &first["id"]).is_null())
        .await;
    assert_eq!(list[0]["text"], "first!", "the comment stays, anonymised");
    assert_eq!(
        author_of(&list, &second["id"]),
        &json!({ "id": "alice", "display_name": "A. Liddell" })
    );
    // A late update never resurrects him, and he can no longer delete the comment.
    users
        .publish(UserProfileUpdated::new("bob", 5, "Bob again"))
        .await
        .unwrap();
    assert_eq!(svc.delete(first["id"].as_str().unwrap(), &bob).await, 403);
    // Bob's token outlives his account: he can no longer post.
    let (status, _) = svc.post("p1", &bob, "back").await;
    assert_eq!(status, 403);
    assert_eq!(svc.list("p1", &reader).await.as_array().unwrap().len(), 2);
    assert!(author_of(&svc.list("p1", &reader).await, &first["id"]).is_null());

    users.publish(UserDeleted::new("alice", 4)).await.unwrap();
    svc.eventually("p2", &reader, |l| author_of(l, &elsewhere["id"]).is_null())
        .await;
    assert!(bus.dead_letters(comment_service::GROUP).is_empty());
    svc.stop().await;
}

#[tokio::test]
async fn only_the_author_deletes_a_comment() {
    let idp = TestIssuer::start().await.unwrap();
    let bus = MemoryBus::new();
    let svc = Service::start(&idp, &bus, Storage::in_memory()).await;
    let alice = token(&idp, "alice", WRITE);
    let mallory = token(&idp, "mallory", WRITE);
    let reader = token(&idp, "reader", "");

    let (_, c) = svc.post("p1", &alice, "mine").await;
    let id = c["id"].as_str().unwrap();

    let res = svc
        .client
        .delete(format!("{}/comments/{id}", svc.base))
        .bearer_auth(&mallory)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert!(!res.text().await.unwrap().contains(&mallory));
    assert_eq!(svc.delete(id, &reader).await, 403);
    assert_eq!(svc.list("p1", &reader).await.as_array().unwrap().len(), 1);

    assert_eq!(svc.delete("no-such-comment", &alice).await, 404);
    assert_eq!(svc.delete(id, &alice).await, 204);
    assert_eq!(svc.list("p1", &reader).await, json!([]));
    assert_eq!(svc.delete(id, &alice).await, 404);
    svc.stop().await;
}

#[tokio::test]
async fn tokens_and_scopes_are_enforced() {
    let idp = TestIssuer::start().await.unwrap();
    let bus = MemoryBus::new();
    let svc = Service::start(&idp, &bus, Storage::in_memory()).await;
    let url = |p: &str| format!("{}{p}", svc.base);
    let c = &svc.client;

    assert_eq!(c.get(url("/healthz")).send().await.unwrap().status(), 200);
    for res in [
        c.get(url("/posts/p1/comments")).send().await.unwrap(),
        c.post(url("/posts/p1/comments"))
            .header("content-type", "application/json")
            .body(r#"{"text":"hi"}"#)
            .send()
            .await
            .unwrap(),
        c.delete(url("/comments/x")).send().await.unwrap(),
    ] {
        assert_eq!(res.status(), 401);
        assert!(
            res.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Bearer")
        );
    }

    // A forged token (signed by a key the issuer does not publish) and an expired one.
    let forged = {
        let other = TestIssuer::start().await.unwrap();
        other.token().subject("alice").claim("scope", WRITE).sign()
    };
    let expired = idp
        .token()
        .subject("alice")
        .claim("scope", WRITE)
        .expires_in_secs(-3600)
        .sign();
    for bad in [forged, expired, "garbage".to_owned()] {
        let (status, _) = svc.post("p1", &bad, "hi").await;
        assert_eq!(status, 401);
    }

    // Any valid token reads; writing needs comments:write exactly.
    let reader = token(&idp, "reader", "comments:read");
    assert_eq!(svc.list("p1", &reader).await, json!([]));
    let res = c
        .post(url("/posts/p1/comments"))
        .bearer_auth(&reader)
        .header("content-type", "application/json")
        .body(r#"{"text":"hi"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(
        res.headers()["www-authenticate"],
        r#"Bearer error="insufficient_scope", scope="comments:write""#
    );
    let lookalike = token(&idp, "reader", "comments:writer");
    assert_eq!(svc.post("p1", &lookalike, "hi").await.0, 403);
    let writer = token(&idp, "writer", "comments:read comments:write");
    assert_eq!(svc.post("p1", &writer, "hi").await.0, 201);
    svc.stop().await;
}

#[tokio::test]
async fn invalid_bodies_are_problem_details() {
    let idp = TestIssuer::start().await.unwrap();
    let bus = MemoryBus::new();
    let svc = Service::start(&idp, &bus, Storage::in_memory()).await;
    let alice = token(&idp, "alice", WRITE);
    let send = |content_type: Option<&'static str>, body: String| {
        let mut req = svc
            .client
            .post(format!("{}/posts/p1/comments", svc.base))
            .bearer_auth(&alice)
            .body(body);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        async move {
            let res = req.send().await.unwrap();
            let status = res.status().as_u16();
            let ct = res.headers()["content-type"].to_str().unwrap().to_owned();
            let body: Value = serde_json::from_str(&res.text().await.unwrap()).unwrap();
            (status, ct, body)
        }
    };
    let json = Some("application/json");
    let long = "x".repeat(comment_service::MAX_TEXT_CHARS + 1);
    for (text, why) in [
        ("", "empty"),
        ("  \n\t ", "blank"),
        (long.as_str(), "too long"),
        ("bell\u{7}", "control character"),
    ] {
        let (status, ct, body) = send(json, json!({ "text": text }).to_string()).await;
        assert_eq!(status, 422, "{why}");
        assert_eq!(ct, "application/problem+json", "{why}");
        assert_eq!(body["status"], 422, "{why}");
        assert!(
            body["detail"].as_str().unwrap().contains("text"),
            "{why}: {body}"
        );
    }
    for (ct, body, expected) in [
        (json, "{not json".to_owned(), 400),
        (None, r#"{"text":"hi"}"#.to_owned(), 415),
        (Some("text/plain"), r#"{"text":"hi"}"#.to_owned(), 415),
        (json, r#"{"txt":"hi"}"#.to_owned(), 422),
        (json, r#"{"text":42}"#.to_owned(), 422),
    ] {
        let (status, content_type, problem) = send(ct, body.clone()).await;
        assert_eq!(status, expected, "{body}");
        assert_eq!(content_type, "application/problem+json");
        assert_eq!(problem["status"], expected);
    }
    let long_post = "p".repeat(comment_service::MAX_POST_ID_CHARS + 1);
    assert_eq!(svc.post(&long_post, &alice, "hi").await.0, 422);

    // Nothing was stored; the longest text and multi-line text are fine.
    assert_eq!(svc.list("p1", &alice).await, json!([]));
    let longest = "é".repeat(comment_service::MAX_TEXT_CHARS);
    assert_eq!(svc.post("p1", &alice, &longest).await.0, 201);
    let (status, c) = svc.post("p1", &alice, "two\nlines\twith tab").await;
    assert_eq!(status, 201);
    assert_eq!(c["text"], "two\nlines\twith tab");
    svc.stop().await;
}
