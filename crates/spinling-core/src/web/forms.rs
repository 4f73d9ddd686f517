//! Form bodies for function create and update, which Qinling accepts as
//! `multipart/form-data` (with the `package` file), `application/x-www-form-urlencoded` or JSON.

use crate::domain::json::JsonLimits;
use crate::error::{ApiError, ApiResult};
use crate::store::packages::{BodyChecksums, ChecksumsInProgress, Upload};
use crate::web::http::ApiRequest;
use crate::web::limits::{check_form_fields, urlencoded_form};
use bytes::Bytes;
use memchr::memmem;
use serde_json::Value as Json;

/// RFC 2046 §5.1.1: a boundary is 1 to 70 characters.
const MAX_BOUNDARY: usize = 70;

/// The fields of a function form: text values by name, plus an optional uploaded package.
#[derive(Debug, Default)]
pub struct FunctionForm {
    pub fields: Vec<(String, Json)>,
    pub package: Option<Upload>,
}

impl FunctionForm {
    pub fn get(&self, name: &str) -> Option<&Json> {
        self.fields
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
            .filter(|v| !v.is_null())
    }
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.fields
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, _)| k.as_str())
    }
}

/// Reads a function form; a JSON one within `limits`.
pub fn parse_function_form(request: &ApiRequest, limits: &JsonLimits) -> ApiResult<FunctionForm> {
    let content_type = request.content_type();
    let body = &request.body;
    if content_type == "multipart/form-data" {
        let boundary = request
            .header("content-type")
            .and_then(boundary_of)
            .ok_or_else(|| ApiError::bad_request("Multipart body without a boundary."))?;
        if boundary.chars().count() > MAX_BOUNDARY {
            return Err(ApiError::bad_request(format!(
                "Multipart boundary is {} characters long; at most {MAX_BOUNDARY} are allowed.",
                boundary.chars().count()
            )));
        }
        return parse_multipart(body, &boundary, request.package_checksums.as_ref());
    }
    if content_type == "application/x-www-form-urlencoded" {
        let text = std::str::from_utf8(body)
            .map_err(|_| ApiError::bad_request("Form body is not valid UTF-8."))?;
        let fields = urlencoded_form(text)?;
        return Ok(FunctionForm {
            fields: fields
                .into_iter()
                .map(|(k, v)| (k, Json::String(v)))
                .collect(),
            package: None,
        });
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(FunctionForm::default());
    }
    match limits.parse(body, "Request body")? {
        Ok(Json::Object(map)) => Ok(FunctionForm {
            fields: map.into_iter().collect(),
            package: None,
        }),
        Ok(_) => Err(ApiError::bad_request("Request body must be a JSON object.")),
        Err(_) => Err(ApiError::bad_request("Request is not in valid JSON format")),
    }
}

fn boundary_of(content_type: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|param| {
        let (k, v) = param.trim().split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"').to_string())
            .filter(|b| !b.is_empty())
    })
}

/// The first `finder` match at or after `from`. A substring search in linear time (memchr's
/// two-way search), and the parser only moves forward: a body is read in linear time whatever
/// it holds.
fn find(haystack: &[u8], finder: &memmem::Finder, from: usize) -> Option<usize> {
    finder.find(haystack.get(from..)?).map(|at| from + at)
}

/// `streamed`: the checksums `PackageHasher` computed, taken for the package if they are of
/// exactly its bytes.
fn parse_multipart(
    body: &Bytes,
    boundary: &str,
    streamed: Option<&BodyChecksums>,
) -> ApiResult<FunctionForm> {
    let malformed = || ApiError::bad_request("Malformed multipart/form-data body.");
    let delimiter = format!("--{boundary}").into_bytes();
    let first_delimiter = memmem::Finder::new(&delimiter);
    let next_delimiter = [b"\r\n", delimiter.as_slice()].concat();
    let next_delimiter = memmem::Finder::new(&next_delimiter);
    let line_end = memmem::Finder::new(b"\r\n");
    let headers_end = memmem::Finder::new(b"\r\n\r\n");
    let mut form = FunctionForm::default();
    let mut pos = find(body, &first_delimiter, 0).ok_or_else(malformed)? + delimiter.len();
    // Parts are numbered from 1; the closing delimiter ends the loop.
    for part in 1.. {
        if body[pos..].starts_with(b"--") {
            break;
        }
        check_form_fields(part)?;
        // Skip the CRLF after the delimiter.
        pos = find(body, &line_end, pos).ok_or_else(malformed)? + 2;
        let part_headers_end = find(body, &headers_end, pos).ok_or_else(malformed)?;
        let headers = String::from_utf8_lossy(&body[pos..part_headers_end]).to_string();
        let content_start = part_headers_end + 4;
        // A package the hasher followed ends where it found the delimiter: not searched twice.
        let followed = streamed
            .map(|streamed| &streamed.range)
            .filter(|range| range.start == content_start)
            .map(|range| range.end)
            .filter(|&end| body[end..].starts_with(next_delimiter.needle()));
        let next = match followed {
            Some(end) => end,
            None => find(body, &next_delimiter, content_start).ok_or_else(malformed)?,
        };
        let content = &body[content_start..next];
        let (name, filename) = disposition(&headers).ok_or_else(malformed)?;
        if name == "package" || filename.is_some() {
            if name == "package" {
                let checksums = streamed
                    .filter(|streamed| streamed.range == (content_start..next))
                    .map(|streamed| streamed.checksums.clone());
                form.package = Some(Upload {
                    bytes: body.slice(content_start..next),
                    checksums,
                });
            }
        } else {
            let text = String::from_utf8(content.to_vec()).map_err(|_| {
                ApiError::bad_request(format!("Form field {name} is not valid UTF-8."))
            })?;
            form.fields.push((name, Json::String(text)));
        }
        pos = next + 2 + delimiter.len();
        if pos > body.len() {
            return Err(malformed());
        }
    }
    Ok(form)
}

/// Computes the checksums of a multipart body's `package` part while the body streams in:
/// hashing a large upload then overlaps with receiving it, instead of following it.
/// `parse_function_form` takes them only for a package found at exactly the same place in the
/// body, and hashes the package itself otherwise.
pub struct PackageHasher {
    delimiter: memmem::Finder<'static>,
    /// The delimiter that ends a part's content: CRLF, then the delimiter.
    content_end: memmem::Finder<'static>,
    headers_end: memmem::Finder<'static>,
    state: HasherState,
}

enum HasherState {
    /// Looking for the package part's headers from this offset on.
    Seeking(usize),
    /// Hashing the package's content, which starts at `start`, up to `hashed`.
    Hashing {
        start: usize,
        hashed: usize,
        checksums: Box<ChecksumsInProgress>,
    },
    Done(BodyChecksums),
}

impl PackageHasher {
    /// A hasher for the request's body, if it is a multipart form.
    pub fn for_request(request: &ApiRequest) -> Option<PackageHasher> {
        if request.content_type() != "multipart/form-data" {
            return None;
        }
        let boundary = request.header("content-type").and_then(boundary_of)?;
        let delimiter = format!("--{boundary}").into_bytes();
        let content_end = [b"\r\n", delimiter.as_slice()].concat();
        Some(PackageHasher {
            delimiter: memmem::Finder::new(&delimiter).into_owned(),
            content_end: memmem::Finder::new(&content_end).into_owned(),
            headers_end: memmem::Finder::new(b"\r\n\r\n").into_owned(),
            state: HasherState::Seeking(0),
        })
    }

    /// Hashes what it can of `body`, the body received so far: all of the package it holds
    /// except the last few bytes, which may begin the delimiter that ends it.
    pub fn advance(&mut self, body: &[u8]) {
        loop {
            let state = std::mem::replace(&mut self.state, HasherState::Seeking(body.len()));
            self.state = match state {
                HasherState::Seeking(from) => {
                    let Some(part) = find(body, &self.delimiter, from) else {
                        self.state = HasherState::Seeking(from);
                        return;
                    };
                    let Some(headers_end) = find(body, &self.headers_end, part) else {
                        self.state = HasherState::Seeking(from);
                        return;
                    };
                    let start = headers_end + 4;
                    let headers = String::from_utf8_lossy(&body[part..headers_end]);
                    match disposition(&headers) {
                        Some((name, _)) if name == "package" => HasherState::Hashing {
                            start,
                            hashed: start,
                            checksums: Box::default(),
                        },
                        _ => HasherState::Seeking(start),
                    }
                }
                HasherState::Hashing {
                    start,
                    hashed,
                    mut checksums,
                } => match find(body, &self.content_end, hashed) {
                    Some(end) => {
                        checksums.update(&body[hashed..end]);
                        HasherState::Done(BodyChecksums {
                            range: start..end,
                            checksums: checksums.finish(),
                        })
                    }
                    None => {
                        let held_back = self.content_end.needle().len() - 1;
                        let safe = body.len().saturating_sub(held_back).max(hashed);
                        checksums.update(&body[hashed..safe]);
                        self.state = HasherState::Hashing {
                            start,
                            hashed: safe,
                            checksums,
                        };
                        return;
                    }
                },
                done @ HasherState::Done(_) => {
                    self.state = done;
                    return;
                }
            };
        }
    }

    /// The checksums of the package part, if the body had one.
    pub fn finish(self) -> Option<BodyChecksums> {
        match self.state {
            HasherState::Done(checksums) => Some(checksums),
            _ => None,
        }
    }
}

/// The `name` and `filename` of a part's Content-Disposition.
fn disposition(headers: &str) -> Option<(String, Option<String>)> {
    let line = headers
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("content-disposition:"))?;
    let mut name = None;
    let mut filename = None;
    for param in line.split(';').skip(1) {
        if let Some((k, v)) = param.trim().split_once('=') {
            let v = v.trim().trim_matches('"').to_string();
            match k.trim().to_ascii_lowercase().as_str() {
                "name" => name = Some(v),
                "filename" => filename = Some(v),
                _ => {}
            }
        }
    }
    Some((name?, filename))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::packages::Checksums;

    fn request(content_type: &str, body: &[u8]) -> ApiRequest {
        ApiRequest::new(
            "POST",
            "http://h/v1/functions",
            vec![("Content-Type".into(), content_type.into())],
            body.to_vec(),
        )
    }

    fn form_of(request: &ApiRequest) -> ApiResult<FunctionForm> {
        parse_function_form(request, &JsonLimits::default())
    }

    #[test]
    fn multipart_fields_and_the_package_file_are_read() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"code\"\r\n\r\n{\"source\": \"package\"}\r\n--XyZ\r\nContent-Disposition: form-data; name=\"package\"; filename=\"f.zip\"\r\nContent-Type: application/zip\r\n\r\nPK\x03\x04\r\n--\r\n--XyZ--\r\n";
        let form = form_of(&request("multipart/form-data; boundary=XyZ", body)).unwrap();
        assert_eq!(form.get("code").unwrap(), "{\"source\": \"package\"}");
        assert_eq!(form.package.unwrap().bytes, &b"PK\x03\x04\r\n--"[..]);
    }

    const BODY: &[u8] = b"--XyZ\r\nContent-Disposition: form-data; name=\"code\"\r\n\r\n{}\r\n--XyZ\r\nContent-Disposition: form-data; name=\"package\"; filename=\"f.zip\"\r\n\r\nPK\x03\x04\r\n--X\r\n--XyZ--\r\n";

    /// Feeds `BODY` to a hasher `piece` bytes at a time, as a body streams in.
    fn streamed(piece: usize) -> Option<BodyChecksums> {
        let request = request("multipart/form-data; boundary=XyZ", BODY);
        let mut hasher = PackageHasher::for_request(&request).unwrap();
        for end in (piece..BODY.len()).step_by(piece).chain([BODY.len()]) {
            hasher.advance(&BODY[..end]);
        }
        hasher.finish()
    }

    #[test]
    fn a_package_hashed_as_it_streams_in_gets_the_checksums_of_its_bytes() {
        let package = b"PK\x03\x04\r\n--X";
        let expected = crate::store::packages::Upload {
            bytes: package.to_vec().into(),
            checksums: Some(Checksums {
                digest: crate::store::packages::digest_hex(package),
                md5: crate::store::packages::md5_hex(package),
            }),
        };
        for piece in [1, 2, 3, 7, 64, BODY.len()] {
            let mut request = request("multipart/form-data; boundary=XyZ", BODY);
            request.package_checksums = streamed(piece);
            let form = form_of(&request).unwrap();
            assert_eq!(form.package.unwrap(), expected, "pieces of {piece}");
        }
    }

    #[test]
    fn checksums_streamed_for_other_bytes_are_not_taken() {
        let mut request = request("multipart/form-data; boundary=XyZ", BODY);
        let mut elsewhere = streamed(5).unwrap();
        elsewhere.range.end -= 1;
        request.package_checksums = Some(elsewhere);
        let package = form_of(&request).unwrap().package.unwrap();
        assert_eq!(package.checksums, None);
    }

    #[test]
    fn a_form_without_a_package_streams_no_checksums() {
        let body =
            b"--XyZ\r\nContent-Disposition: form-data; name=\"code\"\r\n\r\n{}\r\n--XyZ--\r\n";
        let request = request("multipart/form-data; boundary=XyZ", body);
        let mut hasher = PackageHasher::for_request(&request).unwrap();
        hasher.advance(body);
        assert_eq!(hasher.finish(), None);
    }

    #[test]
    fn urlencoded_fields_are_read() {
        let form = form_of(&request(
            "application/x-www-form-urlencoded",
            b"name=my+fn&code=%7B%7D",
        ))
        .unwrap();
        assert_eq!(form.get("name").unwrap(), "my fn");
        assert_eq!(form.get("code").unwrap(), "{}");
    }

    #[test]
    fn json_bodies_are_read_and_nulls_are_unset() {
        let form = form_of(&request(
            "application/json",
            br#"{"name": "a", "cpu": null}"#,
        ))
        .unwrap();
        assert_eq!(form.get("name").unwrap(), "a");
        assert!(form.get("cpu").is_none());
    }

    fn multipart_with_boundary(boundary: &str) -> ApiResult<FunctionForm> {
        let body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nf\r\n--{boundary}--\r\n"
        );
        form_of(&request(
            &format!("multipart/form-data; boundary=\"{boundary}\""),
            body.as_bytes(),
        ))
    }

    #[test]
    fn a_boundary_of_70_characters_is_read() {
        let form = multipart_with_boundary(&"b".repeat(70)).unwrap();
        assert_eq!(form.get("name").unwrap(), "f");
    }

    #[test]
    fn a_boundary_over_70_characters_is_a_bad_request() {
        let err = multipart_with_boundary(&"b".repeat(71)).unwrap_err();
        assert_eq!(err.status(), 400);
        assert_eq!(
            err.message,
            "Multipart boundary is 71 characters long; at most 70 are allowed."
        );
    }

    #[test]
    fn a_truncated_multipart_body_is_a_bad_request() {
        let err = form_of(&request(
            "multipart/form-data; boundary=XyZ",
            b"--XyZ\r\nContent-Disposition: form-data; name=\"code\"\r\n\r\nabc",
        ))
        .unwrap_err();
        assert_eq!(err.status(), 400);
    }

    #[test]
    fn a_form_of_more_than_a_hundred_fields_is_refused() {
        let many = vec!["a=1"; 101].join("&");
        let err = form_of(&request(
            "application/x-www-form-urlencoded",
            many.as_bytes(),
        ))
        .unwrap_err();
        assert_eq!(err.message, "Request body has more than 100 form fields.");
        let part = "--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n";
        let multipart = format!("{}--XyZ--\r\n", part.repeat(101));
        let err = form_of(&request(
            "multipart/form-data; boundary=XyZ",
            multipart.as_bytes(),
        ))
        .unwrap_err();
        assert_eq!(err.message, "Request body has more than 100 form fields.");
        let hundred = format!("{}--XyZ--\r\n", part.repeat(100));
        assert!(form_of(&request(
            "multipart/form-data; boundary=XyZ",
            hundred.as_bytes()
        ))
        .is_ok());
    }

    #[test]
    fn a_json_form_beyond_the_json_limits_is_refused() {
        let deep = format!(r#"{{"name": {}}}"#, "[".repeat(100_000));
        let err = form_of(&request("application/json", deep.as_bytes())).unwrap_err();
        assert_eq!(err.message, "Request body nests deeper than 32 levels.");
    }
}
