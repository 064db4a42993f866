//! Cursor pagination for `resources/list`, `resources/templates/list` and `prompts/list`.
//!
//! A cursor is the decimal offset of the page's first item; it is opaque to clients.

use rmcp::ErrorData as McpError;
use serde_json::json;

/// Default number of items per page (`--page-size`).
pub const DEFAULT_PAGE_SIZE: usize = 2;

/// The page of `items` starting at `cursor` (the first page without one), `page_size` items
/// long (`0` = everything), and the cursor of the next page if items remain.
///
/// A cursor that is not a decimal offset inside `items` is an invalid-params error naming it.
pub fn page<T: Clone>(
    items: &[T],
    cursor: Option<&str>,
    page_size: usize,
) -> Result<(Vec<T>, Option<String>), McpError> {
    let start = match cursor {
        None => 0,
        Some(cursor) => match cursor.parse::<usize>() {
            Ok(offset) if offset < items.len() => offset,
            _ => {
                return Err(McpError::invalid_params(
                    format!("invalid cursor {cursor:?}"),
                    Some(json!({ "cursor": cursor })),
                ));
            }
        },
    };
    let end = if page_size == 0 {
        items.len()
    } else {
        start.saturating_add(page_size).min(items.len())
    };
    let next = (end < items.len()).then(|| end.to_string());
    Ok((items[start..end].to_vec(), next))
}

#[cfg(test)]
mod tests {
    use super::page;

    #[test]
    fn pages_and_cursors() {
        let items = [1, 2, 3, 4, 5];
        assert_eq!(
            page(&items, None, 2).unwrap(),
            (vec![1, 2], Some("2".into()))
        );
        assert_eq!(
            page(&items, Some("2"), 2).unwrap(),
            (vec![3, 4], Some("4".into()))
        );
        assert_eq!(page(&items, Some("4"), 2).unwrap(), (vec![5], None));
        assert_eq!(page(&items, None, 0).unwrap(), (items.to_vec(), None));
        assert_eq!(page(&items, None, 5).unwrap(), (items.to_vec(), None));
        assert_eq!(page::<u8>(&[], None, 2).unwrap(), (vec![], None));
    }

    #[test]
    fn bad_cursors_name_the_cursor() {
        let items = [1, 2, 3];
        for bad in ["x", "-1", "3", "99", ""] {
            let e = page(&items, Some(bad), 2).unwrap_err();
            assert_eq!(e.code, rmcp::model::ErrorCode::INVALID_PARAMS, "{bad}");
            assert!(
                e.message.contains(&format!("{bad:?}")),
                "{bad}: {}",
                e.message
            );
        }
    }
}
