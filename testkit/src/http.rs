//! One HTTP/1.1 request to a server on a socket (the `api` binary, or the router served on a
//! loopback port), over a fresh connection, with hyper's client.

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

/// An HTTP answer with its headers (names lower-cased).
#[derive(Debug, Clone)]
pub struct HttpAnswer {
    /// The status code.
    pub status: u16,
    /// Every header, in order, name lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body as JSON (`Value::Null` when it is not JSON).
    pub body: serde_json::Value,
    /// The body as text (lossy UTF-8).
    pub text: String,
}

impl HttpAnswer {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `method path` to the server at `addr` (`host:port`) over a fresh connection (`Connection:
/// close`), with `Content-Type: application/json`, `body` as JSON (an empty body when `None`) and
/// `Authorization: Bearer <token>` when a token is given.
pub async fn http_full(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&serde_json::Value>,
) -> std::io::Result<HttpAnswer> {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, addr)
        .header(hyper::header::CONNECTION, "close")
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(hyper::header::CONTENT_LENGTH, body.len());
    if let Some(token) = token {
        request = request.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = request
        .body(Full::new(Bytes::from(body)))
        .map_err(std::io::Error::other)?;
    send(addr, request).await
}

/// `method path` to the server at `addr` with exactly these `headers` (plus `Host`,
/// `Connection: close` and `Content-Length`) and this `body`: for forms, cookies and origins.
pub async fn http_raw(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<HttpAnswer> {
    let mut request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, addr)
        .header(hyper::header::CONNECTION, "close")
        .header(hyper::header::CONTENT_LENGTH, body.len());
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let request = request
        .body(Full::new(Bytes::copy_from_slice(body)))
        .map_err(std::io::Error::other)?;
    send(addr, request).await
}

async fn send(addr: &str, request: hyper::Request<Full<Bytes>>) -> std::io::Result<HttpAnswer> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(std::io::Error::other)?;
    // The connection is driven beside the request; it ends with the answer (`Connection: close`).
    let exchange = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(std::io::Error::other)?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let payload = response
            .into_body()
            .collect()
            .await
            .map_err(std::io::Error::other)?
            .to_bytes();
        Ok::<_, std::io::Error>(HttpAnswer {
            status,
            headers,
            body: serde_json::from_slice(&payload).unwrap_or(serde_json::Value::Null),
            text: String::from_utf8_lossy(&payload).into_owned(),
        })
    };
    let (answer, _) = tokio::join!(exchange, connection);
    answer
}

/// Like [`http_full`], but only the status and the JSON body.
pub async fn http(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&serde_json::Value>,
) -> std::io::Result<(u16, serde_json::Value)> {
    let answer = http_full(addr, method, path, token, body).await?;
    Ok((answer.status, answer.body))
}
