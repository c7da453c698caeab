//! API errors: an HTTP status, a machine-readable code and a message,
//! sent as `{"error": {"code": ..., "message": ...}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use xdpath::control::ControlError;
use xdpath::lb::LbError;

/// The status of a request the OpenAPI document allows (its JSON has the
/// documented shape) but whose values are refused: a malformed value, a
/// combination that does not make sense, or one that what is in force does
/// not allow. 400 is for requests that do not have the documented shape
/// (not JSON, wrong types, unknown or missing fields, a bad query or path),
/// so a client validating against the document never gets a 400.
pub const UNPROCESSABLE: StatusCode = StatusCode::UNPROCESSABLE_ENTITY;

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
            ControlError::Parse(_) => (UNPROCESSABLE, "invalid_value"),
            ControlError::Usage(_) => (UNPROCESSABLE, "invalid_request"),
            ControlError::Compile(_) => (UNPROCESSABLE, "not_installable"),
            ControlError::ManagementOverlap { .. } => (StatusCode::CONFLICT, "management_overlap"),
            ControlError::UnknownInterface { .. } => (UNPROCESSABLE, "unknown_interface"),
            ControlError::NoSuchRule { .. } => (StatusCode::NOT_FOUND, "no_such_rule"),
            ControlError::NoSuchLimit { .. } => (StatusCode::NOT_FOUND, "no_such_limit"),
            ControlError::Owned { .. } => (StatusCode::CONFLICT, "owned"),
            ControlError::NoSuchBlock { .. } => (StatusCode::NOT_FOUND, "no_such_block"),
            ControlError::NoSuchManagement { .. } => (StatusCode::NOT_FOUND, "no_such_management"),
            ControlError::IdsExhausted { .. } => (StatusCode::CONFLICT, "ids_exhausted"),
            ControlError::OlderProgram { .. } => (StatusCode::CONFLICT, "older_program"),
            ControlError::Line { .. } | ControlError::ReadRules { .. } => {
                (UNPROCESSABLE, "invalid_rules")
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
            LbError::LocalAddresses { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            LbError::VipSyntax { .. } | LbError::LocalVip { .. } => (UNPROCESSABLE, "invalid_vip"),
            LbError::Address { .. } | LbError::MappedAddress { .. } => {
                (UNPROCESSABLE, "invalid_address")
            }
            LbError::Mac { .. } => (UNPROCESSABLE, "invalid_mac"),
            LbError::Prefix(_) => (UNPROCESSABLE, "invalid_cidr"),
            LbError::VipExists { .. } => (StatusCode::CONFLICT, "vip_exists"),
            LbError::NoSuchVip { .. } => (StatusCode::NOT_FOUND, "no_such_vip"),
            LbError::BackendExists { .. } => (StatusCode::CONFLICT, "backend_exists"),
            LbError::NoSuchBackend { .. } => (StatusCode::NOT_FOUND, "no_such_backend"),
            LbError::Weight { .. } => (UNPROCESSABLE, "invalid_weight"),
            LbError::NoOuterSource { .. } => (UNPROCESSABLE, "no_outer_source"),
            LbError::SourceFamily { .. } => (UNPROCESSABLE, "invalid_source"),
            LbError::Mtu { .. } | LbError::MtuForIpv6 { .. } => (UNPROCESSABLE, "invalid_mtu"),
            LbError::TooManyVips | LbError::TooManyBackends => (StatusCode::CONFLICT, "table_full"),
            LbError::Table { .. } | LbError::Overfull { .. } => {
                (UNPROCESSABLE, "invalid_ring_size")
            }
            LbError::Usage(_) | LbError::PortlessCheck { .. } => (UNPROCESSABLE, "invalid_request"),
            LbError::Encap { .. } => (UNPROCESSABLE, "invalid_encap"),
            LbError::Owner { .. } => (UNPROCESSABLE, "invalid_owner"),
            LbError::OwnerConflict { .. } => (StatusCode::CONFLICT, "owner_conflict"),
            LbError::OwnedVip { .. } => (StatusCode::CONFLICT, "owned"),
            LbError::NoSuchOwner { .. } => (StatusCode::NOT_FOUND, "no_such_owner"),
            LbError::TooManyAllowPrefixes { .. } => (StatusCode::CONFLICT, "table_full"),
        };
        Self::new(status, code, message)
    }
}
