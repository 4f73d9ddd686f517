//! What one request may hold besides its size (which the adapter bounds while the body streams
//! in) and its JSON (`domain::json`): how many form fields and query parameters it carries, and
//! how long a text may be.

use crate::error::{ApiError, ApiResult};
use crate::web::http::ApiRequest;

/// The longest text a client may give a name or a description, and the longest value of a
/// query parameter: the column width Qinling gives names and descriptions.
pub const MAX_TEXT: usize = 255;

/// The most fields a form body, and the most parameters a query string, may have. Qinling's
/// largest form has 9 fields and its largest query 5: this leaves room and bounds the work.
pub const MAX_FIELDS: usize = 100;

/// The fields of an `application/x-www-form-urlencoded` body, refused (400) past `MAX_FIELDS`
/// before any is decoded: every form a client sends is held to the same bound.
pub fn urlencoded_form(text: &str) -> ApiResult<Vec<(String, String)>> {
    check_form_fields(text.split('&').filter(|p| !p.is_empty()).count())?;
    Ok(crate::web::http::parse_urlencoded(text))
}

/// Refuses a form body of more than `MAX_FIELDS` fields (parts of a multipart body).
pub fn check_form_fields(count: usize) -> ApiResult<()> {
    if count > MAX_FIELDS {
        return Err(ApiError::bad_request(format!(
            "Request body has more than {MAX_FIELDS} form fields."
        )));
    }
    Ok(())
}

/// Refuses a query of more than `MAX_FIELDS` parameters, or with a value longer than any
/// real one (ids, numbers, booleans, statuses) can be.
pub fn check_query(request: &ApiRequest) -> ApiResult<()> {
    if request.query.len() > MAX_FIELDS {
        return Err(ApiError::bad_request(format!(
            "Request has more than {MAX_FIELDS} query parameters."
        )));
    }
    match request
        .query
        .iter()
        .find(|(_, value)| value.chars().count() > MAX_TEXT)
    {
        Some((name, _)) => Err(ApiError::bad_request(format!(
            "Query parameter {name} is longer than {MAX_TEXT} characters."
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_many_query_parameters_or_too_long_a_value_are_refused() {
        let many: Vec<String> = (0..=MAX_FIELDS).map(|i| format!("p{i}=1")).collect();
        let url = format!("http://h/v1/runtimes?{}", many.join("&"));
        assert_eq!(
            check_query(&ApiRequest::new("GET", &url, vec![], vec![]))
                .unwrap_err()
                .message,
            "Request has more than 100 query parameters."
        );
        let url = format!("http://h/v1/executions?status={}", "x".repeat(256));
        assert_eq!(
            check_query(&ApiRequest::new("GET", &url, vec![], vec![]))
                .unwrap_err()
                .message,
            "Query parameter status is longer than 255 characters."
        );
        let url = "http://h/v1/executions?status=success&all_projects=true";
        assert!(check_query(&ApiRequest::new("GET", url, vec![], vec![])).is_ok());
    }

    #[test]
    fn too_many_form_fields_are_refused() {
        assert!(check_form_fields(MAX_FIELDS).is_ok());
        assert_eq!(
            check_form_fields(MAX_FIELDS + 1).unwrap_err().message,
            "Request body has more than 100 form fields."
        );
    }

    #[test]
    fn an_urlencoded_form_is_held_to_the_field_bound() {
        let form = |n: usize| vec!["a=1"; n].join("&");
        assert_eq!(
            urlencoded_form(&form(MAX_FIELDS)).unwrap().len(),
            MAX_FIELDS
        );
        assert_eq!(
            urlencoded_form(&form(20_000)).unwrap_err().message,
            "Request body has more than 100 form fields."
        );
        assert_eq!(urlencoded_form("a=1&&b=2&").unwrap().len(), 2);
    }
}
