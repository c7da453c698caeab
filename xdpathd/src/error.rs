//! API errors: an HTTP status, a machine-readable code and a message,
//! sent as `{"error": {"code": ..., "message": ...}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use xdpath::control::ControlError;
use xdpath::lb::LbError;

/// A failed API call.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable code, e.g. `invalid_cidr`, `no_such_rule`.
    pub code: &'static str,
    /// What went wrong, for people.
    pub message: String,
}

impl ApiError {
    /// An error of `status` and `code`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400 with `code`.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// The JSON body: `{"error": {"code": ..., "message": ...}}`.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({
            "error": { "code": self.code, "message": self.message }
        })
    }

    /// A whole HTTP/1.1 answer, for a connection that never reaches a
    /// handler (a malformed head, a timeout, a listener at its limit); the
    /// connection closes after it.
    pub fn to_http(&self) -> Vec<u8> {
        let body = self.body().to_string();
        format!(
            "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
             connection: close\r\n\r\n{body}",
            self.status.as_u16(),
            self.status.canonical_reason().unwrap_or("Error"),
            body.len()
        )
        .into_bytes()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = self.body();
        (self.status, Json(body)).into_response()
    }
}

impl From<ControlError> for ApiError {
    fn from(error: ControlError) -> Self {
        let message = error.to_string();
        let (status, code) = match &error {
            ControlError::Parse(_) => (StatusCode::BAD_REQUEST, "invalid_value"),
            ControlError::Usage(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            ControlError::Compile(_) => (StatusCode::UNPROCESSABLE_ENTITY, "not_installable"),
            ControlError::ManagementOverlap { .. } => (StatusCode::CONFLICT, "management_overlap"),
            ControlError::UnknownInterface { .. } => (StatusCode::BAD_REQUEST, "unknown_interface"),
            ControlError::NoSuchRule { .. } => (StatusCode::NOT_FOUND, "no_such_rule"),
            ControlError::NoSuchLimit { .. } => (StatusCode::NOT_FOUND, "no_such_limit"),
            ControlError::NoSuchBlock { .. } => (StatusCode::NOT_FOUND, "no_such_block"),
            ControlError::NoSuchManagement { .. } => (StatusCode::NOT_FOUND, "no_such_management"),
            ControlError::IdsExhausted { .. } => (StatusCode::CONFLICT, "ids_exhausted"),
            ControlError::Line { .. } | ControlError::ReadRules { .. } => {
                (StatusCode::BAD_REQUEST, "invalid_rules")
            }
            ControlError::Daemon(_) => (StatusCode::BAD_GATEWAY, "daemon"),
            ControlError::Apply(_)
            | ControlError::Dataplane(_)
            | ControlError::State(_)
            | ControlError::Lock { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        Self::new(status, code, message)
    }
}

impl From<LbError> for ApiError {
    fn from(error: LbError) -> Self {
        let message = error.to_string();
        let (status, code) = match error {
            LbError::Control(inner) => return (*inner).into(),
            LbError::VipSyntax { .. } => (StatusCode::BAD_REQUEST, "invalid_vip"),
            LbError::Address { .. } => (StatusCode::BAD_REQUEST, "invalid_address"),
            LbError::Mac { .. } => (StatusCode::BAD_REQUEST, "invalid_mac"),
            LbError::Prefix(_) => (StatusCode::BAD_REQUEST, "invalid_cidr"),
            LbError::VipExists { .. } => (StatusCode::CONFLICT, "vip_exists"),
            LbError::NoSuchVip { .. } => (StatusCode::NOT_FOUND, "no_such_vip"),
            LbError::BackendExists { .. } => (StatusCode::CONFLICT, "backend_exists"),
            LbError::NoSuchBackend { .. } => (StatusCode::NOT_FOUND, "no_such_backend"),
            LbError::Weight { .. } => (StatusCode::BAD_REQUEST, "invalid_weight"),
            LbError::NoOuterSource { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "no_outer_source"),
            LbError::SourceFamily { .. } => (StatusCode::BAD_REQUEST, "invalid_source"),
            LbError::TooManyVips | LbError::TooManyBackends => (StatusCode::CONFLICT, "table_full"),
            LbError::Table { .. } => (StatusCode::BAD_REQUEST, "invalid_ring_size"),
            LbError::Usage(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            LbError::Encap { .. } => (StatusCode::BAD_REQUEST, "invalid_encap"),
            LbError::Owner { .. } => (StatusCode::BAD_REQUEST, "invalid_owner"),
            LbError::OwnerConflict { .. } => (StatusCode::CONFLICT, "owner_conflict"),
            LbError::NoSuchOwner { .. } => (StatusCode::NOT_FOUND, "no_such_owner"),
            LbError::TooManyAllowPrefixes { .. } => (StatusCode::CONFLICT, "table_full"),
        };
        Self::new(status, code, message)
    }
}
