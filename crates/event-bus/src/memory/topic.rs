//! AMQP topic matching for binding keys.

/// Whether an AMQP topic `pattern` matches a routing `key`: words are
/// separated by `.`, `*` matches exactly one word, `#` zero or more words.
///
/// ```
/// use tessera_event_bus::memory::topic_matches;
///
/// assert!(topic_matches("com.example.user.deleted.v1", "com.example.user.deleted.v1"));
/// assert!(topic_matches("com.example.user.*.v1", "com.example.user.deleted.v1"));
/// assert!(topic_matches("com.example.#", "com.example.user.deleted.v1"));
/// assert!(!topic_matches("com.example.*", "com.example.user.deleted.v1"));
/// ```
pub fn topic_matches(pattern: &str, key: &str) -> bool {
    if pattern == key {
        return true;
    }
    let pattern: Vec<&str> = pattern.split('.').collect();
    let key: Vec<&str> = key.split('.').collect();
    matches(&pattern, &key)
}

fn matches(pattern: &[&str], key: &[&str]) -> bool {
    match (pattern.split_first(), key.split_first()) {
        (None, None) => true,
        (Some((&"#", rest)), _) => {
            // `#` takes zero words, or one word and stays.
            matches(rest, key) || (!key.is_empty() && matches(pattern, &key[1..]))
        }
        (Some((p, prest)), Some((k, krest))) => (*p == "*" || p == k) && matches(prest, krest),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::topic_matches;

    #[test]
    fn topic_patterns_follow_amqp_rules() {
        assert!(topic_matches("#", "a.b.c"));
        assert!(topic_matches("a.#", "a"));
        assert!(topic_matches("a.#.c", "a.c"));
        assert!(topic_matches("a.#.c", "a.b.b.c"));
        assert!(topic_matches("*.b", "a.b"));
        assert!(!topic_matches("*.b", "b"));
        assert!(!topic_matches("a.b", "a.b.c"));
        assert!(!topic_matches("a.b.c", "a.b"));
        assert!(!topic_matches("a", ""));
    }
}
