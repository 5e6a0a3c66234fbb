//! Run with `cargo run -p demo`.
//!
//! Starts an embedded OIDC test issuer and the protected-api example in one
//! process (no broker, no database, no network beyond loopback), then sends a
//! few requests and narrates what happens to each.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;
use tessera_authn::test_util::TestIssuer;

struct Step {
    what: &'static str,
    path: &'static str,
    token: Option<String>,
    expect: u16,
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("demo failed: {e}");
            ExitCode::from(1)
        }
    }
}

async fn run() -> Result<bool, Box<dyn std::error::Error>> {
    println!("Tessera demo: protecting an HTTP API\n");
    let idp = TestIssuer::start_on("127.0.0.1:0".parse()?, None, "protected-api").await?;
    println!(
        "  identity provider  {} (discovery + JWKS, keys generated now)",
        idp.issuer()
    );

    let config = protected_api::Config {
        issuer: idp.issuer().to_owned(),
        audience: "protected-api".to_owned(),
        jwks_url: None,
        bind: "127.0.0.1:0".parse()?,
    };
    let validator = config.validator()?;
    validator.warm_up().await?;
    let listener = tokio::net::TcpListener::bind(config.bind).await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, protected_api::app(validator)).await;
    });
    println!(
        "  protected-api      {base} (audience \"protected-api\", GET /admin needs scope \"admin\")\n"
    );

    let steps = [
        Step {
            what: "no token at all",
            path: "/me",
            token: None,
            expect: 401,
        },
        Step {
            what: "a valid token for alice",
            path: "/me",
            token: Some(idp.token().subject("alice").claim("scope", "read").sign()),
            expect: 200,
        },
        Step {
            what: "alice's token, expired an hour ago",
            path: "/me",
            token: Some(idp.token().subject("alice").expires_in_secs(-3600).sign()),
            expect: 401,
        },
        Step {
            what: "a token minted for another API (wrong audience)",
            path: "/me",
            token: Some(idp.token().subject("alice").audience("billing-api").sign()),
            expect: 401,
        },
        Step {
            what: "alice (scope \"read\") asks for /admin",
            path: "/admin",
            token: Some(idp.token().subject("alice").claim("scope", "read").sign()),
            expect: 403,
        },
        Step {
            what: "bob with scope \"administrator\" (not \"admin\": exact match)",
            path: "/admin",
            token: Some(
                idp.token()
                    .subject("bob")
                    .claim("scope", "administrator")
                    .sign(),
            ),
            expect: 403,
        },
        Step {
            what: "carol with scope \"admin\"",
            path: "/admin",
            token: Some(
                idp.token()
                    .subject("carol")
                    .claim("scope", "read admin")
                    .sign(),
            ),
            expect: 200,
        },
    ];

    let client = reqwest::Client::new();
    let mut all_as_expected = true;
    for (i, step) in steps.iter().enumerate() {
        let mut request = client.get(format!("{base}{}", step.path));
        if let Some(token) = &step.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let challenge = response
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response.text().await?;
        let ok = status == step.expect;
        all_as_expected &= ok;
        println!("{}. {} -> GET {}", i + 1, step.what, step.path);
        println!(
            "   {status} {}",
            if ok { "(as expected)" } else { "(UNEXPECTED)" }
        );
        if let Some(challenge) = challenge {
            println!("   WWW-Authenticate: {challenge}");
        }
        println!("   {}\n", summarize(&body));
    }
    println!(
        "{}",
        if all_as_expected {
            "Every request was answered as expected."
        } else {
            "Some answers were not as expected."
        }
    );
    Ok(all_as_expected)
}

fn summarize(body: &str) -> String {
    const MAX: usize = 160;
    let one_line: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > MAX {
        format!("{}...", one_line.chars().take(MAX).collect::<String>())
    } else {
        one_line
    }
}
