//! Printing an error with its causes, each once.

/// `error` followed by its causes, joined by ": ", skipping a cause whose text is already part of
/// what is printed. Most errors of this project quote their source in their own message (so that
/// `to_string()` is complete) and also return it as `source()`; anyhow's `{:#}` would print that
/// cause twice ("creating X: Not a directory: Not a directory").
pub fn error_text(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let c = cause.to_string();
        if text.contains(&c) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&c);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("creating {path}: {source}")]
    struct Quoting {
        path: String,
        #[source]
        source: std::io::Error,
    }

    #[test]
    fn a_quoted_cause_is_printed_once_and_others_are_kept() {
        let io = std::io::Error::new(std::io::ErrorKind::NotADirectory, "Not a directory");
        let e = anyhow::Error::new(Quoting {
            path: "cache/entries".into(),
            source: io,
        })
        .context("opening the cache");
        assert_eq!(format!("{e:#}").matches("Not a directory").count(), 2);
        assert_eq!(
            error_text(&e),
            "opening the cache: creating cache/entries: Not a directory"
        );
        let plain = anyhow::anyhow!("inner").context("outer");
        assert_eq!(error_text(&plain), "outer: inner");
    }
}
