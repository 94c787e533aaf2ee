//! OpenFlow 1.3 error types and codes (spec §7.4.4, plus the ONF bundle extension's codes as
//! Open vSwitch sends them for OpenFlow 1.3), and the crate's decode error.
//!
//! Every refusal in this crate and in the switch is expressed as an [`ErrorCode`], so that what
//! goes back to the peer is always the spec's (type, code) pair. The table below is the single
//! source of both the numbers and the `OFPET_*`/`OFP*C_*` names used when printing.

use std::fmt;

/// ONF's experimenter id, used by the bundle extension (EXT-230) and its error codes.
pub const ONF_EXPERIMENTER_ID: u32 = 0x4f4e_4600;

/// One error as it travels in an OFPT_ERROR message.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum ErrorCode {
    /// A spec error: `type` and `code` (§7.4.4).
    Standard { etype: u16, code: u16 },
    /// OFPET_EXPERIMENTER (0xffff): `exp_type` and the experimenter id.
    Experimenter { exp_type: u16, experimenter: u32 },
}

/// OFPET_EXPERIMENTER.
pub const OFPET_EXPERIMENTER: u16 = 0xffff;

macro_rules! error_table {
    ($( $etype:literal $tname:literal { $( $code:literal $konst:ident $cname:literal ),* $(,)? } )*) => {
        impl ErrorCode {
            $($(
                #[doc = concat!("`", $tname, "` / `", $cname, "`")]
                pub const $konst: ErrorCode = ErrorCode::Standard { etype: $etype, code: $code };
            )*)*
        }

        /// The `OFPET_*` name of an error type.
        pub fn type_name(etype: u16) -> Option<&'static str> {
            match etype {
                $( $etype => Some($tname), )*
                OFPET_EXPERIMENTER => Some("OFPET_EXPERIMENTER"),
                _ => None,
            }
        }

        /// The `OFP*C_*` name of a code within a type.
        pub fn code_name(etype: u16, code: u16) -> Option<&'static str> {
            match (etype, code) {
                $($( ($etype, $code) => Some($cname), )*)*
                _ => None,
            }
        }
    };
}

error_table! {
    0 "OFPET_HELLO_FAILED" {
        0 HELLO_INCOMPATIBLE "OFPHFC_INCOMPATIBLE",
        1 HELLO_EPERM "OFPHFC_EPERM",
    }
    1 "OFPET_BAD_REQUEST" {
        0 BAD_REQUEST_BAD_VERSION "OFPBRC_BAD_VERSION",
        1 BAD_REQUEST_BAD_TYPE "OFPBRC_BAD_TYPE",
        2 BAD_REQUEST_BAD_MULTIPART "OFPBRC_BAD_MULTIPART",
        3 BAD_REQUEST_BAD_EXPERIMENTER "OFPBRC_BAD_EXPERIMENTER",
        4 BAD_REQUEST_BAD_EXP_TYPE "OFPBRC_BAD_EXP_TYPE",
        5 BAD_REQUEST_EPERM "OFPBRC_EPERM",
        6 BAD_REQUEST_BAD_LEN "OFPBRC_BAD_LEN",
        7 BAD_REQUEST_BUFFER_EMPTY "OFPBRC_BUFFER_EMPTY",
        8 BAD_REQUEST_BUFFER_UNKNOWN "OFPBRC_BUFFER_UNKNOWN",
        9 BAD_REQUEST_BAD_TABLE_ID "OFPBRC_BAD_TABLE_ID",
        10 BAD_REQUEST_IS_SLAVE "OFPBRC_IS_SLAVE",
        11 BAD_REQUEST_BAD_PORT "OFPBRC_BAD_PORT",
        12 BAD_REQUEST_BAD_PACKET "OFPBRC_BAD_PACKET",
        13 BAD_REQUEST_MULTIPART_BUFFER_OVERFLOW "OFPBRC_MULTIPART_BUFFER_OVERFLOW",
    }
    2 "OFPET_BAD_ACTION" {
        0 BAD_ACTION_BAD_TYPE "OFPBAC_BAD_TYPE",
        1 BAD_ACTION_BAD_LEN "OFPBAC_BAD_LEN",
        2 BAD_ACTION_BAD_EXPERIMENTER "OFPBAC_BAD_EXPERIMENTER",
        3 BAD_ACTION_BAD_EXP_TYPE "OFPBAC_BAD_EXP_TYPE",
        4 BAD_ACTION_BAD_OUT_PORT "OFPBAC_BAD_OUT_PORT",
        5 BAD_ACTION_BAD_ARGUMENT "OFPBAC_BAD_ARGUMENT",
        6 BAD_ACTION_EPERM "OFPBAC_EPERM",
        7 BAD_ACTION_TOO_MANY "OFPBAC_TOO_MANY",
        8 BAD_ACTION_BAD_QUEUE "OFPBAC_BAD_QUEUE",
        9 BAD_ACTION_BAD_OUT_GROUP "OFPBAC_BAD_OUT_GROUP",
        10 BAD_ACTION_MATCH_INCONSISTENT "OFPBAC_MATCH_INCONSISTENT",
        11 BAD_ACTION_UNSUPPORTED_ORDER "OFPBAC_UNSUPPORTED_ORDER",
        12 BAD_ACTION_BAD_TAG "OFPBAC_BAD_TAG",
        13 BAD_ACTION_BAD_SET_TYPE "OFPBAC_BAD_SET_TYPE",
        14 BAD_ACTION_BAD_SET_LEN "OFPBAC_BAD_SET_LEN",
        15 BAD_ACTION_BAD_SET_ARGUMENT "OFPBAC_BAD_SET_ARGUMENT",
    }
    3 "OFPET_BAD_INSTRUCTION" {
        0 BAD_INSTRUCTION_UNKNOWN_INST "OFPBIC_UNKNOWN_INST",
        1 BAD_INSTRUCTION_UNSUP_INST "OFPBIC_UNSUP_INST",
        2 BAD_INSTRUCTION_BAD_TABLE_ID "OFPBIC_BAD_TABLE_ID",
        3 BAD_INSTRUCTION_UNSUP_METADATA "OFPBIC_UNSUP_METADATA",
        4 BAD_INSTRUCTION_UNSUP_METADATA_MASK "OFPBIC_UNSUP_METADATA_MASK",
        5 BAD_INSTRUCTION_BAD_EXPERIMENTER "OFPBIC_BAD_EXPERIMENTER",
        6 BAD_INSTRUCTION_BAD_EXP_TYPE "OFPBIC_BAD_EXP_TYPE",
        7 BAD_INSTRUCTION_BAD_LEN "OFPBIC_BAD_LEN",
        8 BAD_INSTRUCTION_EPERM "OFPBIC_EPERM",
    }
    4 "OFPET_BAD_MATCH" {
        0 BAD_MATCH_BAD_TYPE "OFPBMC_BAD_TYPE",
        1 BAD_MATCH_BAD_LEN "OFPBMC_BAD_LEN",
        2 BAD_MATCH_BAD_TAG "OFPBMC_BAD_TAG",
        3 BAD_MATCH_BAD_DL_ADDR_MASK "OFPBMC_BAD_DL_ADDR_MASK",
        4 BAD_MATCH_BAD_NW_ADDR_MASK "OFPBMC_BAD_NW_ADDR_MASK",
        5 BAD_MATCH_BAD_WILDCARDS "OFPBMC_BAD_WILDCARDS",
        6 BAD_MATCH_BAD_FIELD "OFPBMC_BAD_FIELD",
        7 BAD_MATCH_BAD_VALUE "OFPBMC_BAD_VALUE",
        8 BAD_MATCH_BAD_MASK "OFPBMC_BAD_MASK",
        9 BAD_MATCH_BAD_PREREQ "OFPBMC_BAD_PREREQ",
        10 BAD_MATCH_DUP_FIELD "OFPBMC_DUP_FIELD",
        11 BAD_MATCH_EPERM "OFPBMC_EPERM",
    }
    5 "OFPET_FLOW_MOD_FAILED" {
        0 FLOW_MOD_UNKNOWN "OFPFMFC_UNKNOWN",
        1 FLOW_MOD_TABLE_FULL "OFPFMFC_TABLE_FULL",
        2 FLOW_MOD_BAD_TABLE_ID "OFPFMFC_BAD_TABLE_ID",
        3 FLOW_MOD_OVERLAP "OFPFMFC_OVERLAP",
        4 FLOW_MOD_EPERM "OFPFMFC_EPERM",
        5 FLOW_MOD_BAD_TIMEOUT "OFPFMFC_BAD_TIMEOUT",
        6 FLOW_MOD_BAD_COMMAND "OFPFMFC_BAD_COMMAND",
        7 FLOW_MOD_BAD_FLAGS "OFPFMFC_BAD_FLAGS",
    }
    6 "OFPET_GROUP_MOD_FAILED" {
        0 GROUP_MOD_GROUP_EXISTS "OFPGMFC_GROUP_EXISTS",
        1 GROUP_MOD_INVALID_GROUP "OFPGMFC_INVALID_GROUP",
        2 GROUP_MOD_WEIGHT_UNSUPPORTED "OFPGMFC_WEIGHT_UNSUPPORTED",
        3 GROUP_MOD_OUT_OF_GROUPS "OFPGMFC_OUT_OF_GROUPS",
        4 GROUP_MOD_OUT_OF_BUCKETS "OFPGMFC_OUT_OF_BUCKETS",
        5 GROUP_MOD_CHAINING_UNSUPPORTED "OFPGMFC_CHAINING_UNSUPPORTED",
        6 GROUP_MOD_WATCH_UNSUPPORTED "OFPGMFC_WATCH_UNSUPPORTED",
        7 GROUP_MOD_LOOP "OFPGMFC_LOOP",
        8 GROUP_MOD_UNKNOWN_GROUP "OFPGMFC_UNKNOWN_GROUP",
        9 GROUP_MOD_CHAINED_GROUP "OFPGMFC_CHAINED_GROUP",
        10 GROUP_MOD_BAD_TYPE "OFPGMFC_BAD_TYPE",
        11 GROUP_MOD_BAD_COMMAND "OFPGMFC_BAD_COMMAND",
        12 GROUP_MOD_BAD_BUCKET "OFPGMFC_BAD_BUCKET",
        13 GROUP_MOD_BAD_WATCH "OFPGMFC_BAD_WATCH",
        14 GROUP_MOD_EPERM "OFPGMFC_EPERM",
    }
    7 "OFPET_PORT_MOD_FAILED" {
        0 PORT_MOD_BAD_PORT "OFPPMFC_BAD_PORT",
        1 PORT_MOD_BAD_HW_ADDR "OFPPMFC_BAD_HW_ADDR",
        2 PORT_MOD_BAD_CONFIG "OFPPMFC_BAD_CONFIG",
        3 PORT_MOD_BAD_ADVERTISE "OFPPMFC_BAD_ADVERTISE",
        4 PORT_MOD_EPERM "OFPPMFC_EPERM",
    }
    8 "OFPET_TABLE_MOD_FAILED" {
        0 TABLE_MOD_BAD_TABLE "OFPTMFC_BAD_TABLE",
        1 TABLE_MOD_BAD_CONFIG "OFPTMFC_BAD_CONFIG",
        2 TABLE_MOD_EPERM "OFPTMFC_EPERM",
    }
    9 "OFPET_QUEUE_OP_FAILED" {
        0 QUEUE_OP_BAD_PORT "OFPQOFC_BAD_PORT",
        1 QUEUE_OP_BAD_QUEUE "OFPQOFC_BAD_QUEUE",
        2 QUEUE_OP_EPERM "OFPQOFC_EPERM",
    }
    10 "OFPET_SWITCH_CONFIG_FAILED" {
        0 SWITCH_CONFIG_BAD_FLAGS "OFPSCFC_BAD_FLAGS",
        1 SWITCH_CONFIG_BAD_LEN "OFPSCFC_BAD_LEN",
        2 SWITCH_CONFIG_EPERM "OFPSCFC_EPERM",
    }
    11 "OFPET_ROLE_REQUEST_FAILED" {
        0 ROLE_REQUEST_STALE "OFPRRFC_STALE",
        1 ROLE_REQUEST_UNSUP "OFPRRFC_UNSUP",
        2 ROLE_REQUEST_BAD_ROLE "OFPRRFC_BAD_ROLE",
    }
    12 "OFPET_METER_MOD_FAILED" {
        0 METER_MOD_UNKNOWN "OFPMMFC_UNKNOWN",
        1 METER_MOD_METER_EXISTS "OFPMMFC_METER_EXISTS",
        2 METER_MOD_INVALID_METER "OFPMMFC_INVALID_METER",
        3 METER_MOD_UNKNOWN_METER "OFPMMFC_UNKNOWN_METER",
        4 METER_MOD_BAD_COMMAND "OFPMMFC_BAD_COMMAND",
        5 METER_MOD_BAD_FLAGS "OFPMMFC_BAD_FLAGS",
        6 METER_MOD_BAD_RATE "OFPMMFC_BAD_RATE",
        7 METER_MOD_BAD_BURST "OFPMMFC_BAD_BURST",
        8 METER_MOD_BAD_BAND "OFPMMFC_BAD_BAND",
        9 METER_MOD_BAD_BAND_VALUE "OFPMMFC_BAD_BAND_VALUE",
        10 METER_MOD_OUT_OF_METERS "OFPMMFC_OUT_OF_METERS",
        11 METER_MOD_OUT_OF_BANDS "OFPMMFC_OUT_OF_BANDS",
    }
    13 "OFPET_TABLE_FEATURES_FAILED" {
        0 TABLE_FEATURES_BAD_TABLE "OFPTFFC_BAD_TABLE",
        1 TABLE_FEATURES_BAD_METADATA "OFPTFFC_BAD_METADATA",
        2 TABLE_FEATURES_BAD_TYPE "OFPTFFC_BAD_TYPE",
        3 TABLE_FEATURES_BAD_LEN "OFPTFFC_BAD_LEN",
        4 TABLE_FEATURES_BAD_ARGUMENT "OFPTFFC_BAD_ARGUMENT",
        5 TABLE_FEATURES_EPERM "OFPTFFC_EPERM",
    }
}

macro_rules! bundle_errors {
    ($( $code:literal $konst:ident $cname:literal ),* $(,)?) => {
        impl ErrorCode {
            $(
                #[doc = concat!("ONF extension error for OpenFlow 1.3 (as Open vSwitch sends it): `", $cname, "`")]
                pub const $konst: ErrorCode =
                    ErrorCode::Experimenter { exp_type: $code, experimenter: ONF_EXPERIMENTER_ID };
            )*
        }

        fn bundle_code_name(exp_type: u16) -> Option<&'static str> {
            match exp_type {
                $( $code => Some($cname), )*
                _ => None,
            }
        }
    };
}

// The ONF bundle extension numbers its codes from 2300 in the OFPET_EXPERIMENTER space.
bundle_errors! {
    2300 BUNDLE_UNKNOWN "OFPBFC_UNKNOWN",
    2301 BUNDLE_EPERM "OFPBFC_EPERM",
    2302 BUNDLE_BAD_ID "OFPBFC_BAD_ID",
    2303 BUNDLE_BUNDLE_EXIST "OFPBFC_BUNDLE_EXIST",
    2304 BUNDLE_BUNDLE_CLOSED "OFPBFC_BUNDLE_CLOSED",
    2305 BUNDLE_OUT_OF_BUNDLES "OFPBFC_OUT_OF_BUNDLES",
    2306 BUNDLE_BAD_TYPE "OFPBFC_BAD_TYPE",
    2307 BUNDLE_BAD_FLAGS "OFPBFC_BAD_FLAGS",
    2308 BUNDLE_MSG_BAD_LEN "OFPBFC_MSG_BAD_LEN",
    2309 BUNDLE_MSG_BAD_XID "OFPBFC_MSG_BAD_XID",
    2310 BUNDLE_MSG_UNSUP "OFPBFC_MSG_UNSUP",
    2311 BUNDLE_MSG_CONFLICT "OFPBFC_MSG_CONFLICT",
    2312 BUNDLE_MSG_TOO_MANY "OFPBFC_MSG_TOO_MANY",
    2313 BUNDLE_MSG_FAILED "OFPBFC_MSG_FAILED",
    2314 BUNDLE_TIMEOUT "OFPBFC_TIMEOUT",
    2315 BUNDLE_BUNDLE_IN_PROGRESS "OFPBFC_BUNDLE_IN_PROGRESS",
    // OpenFlow 1.4+ codes that Open vSwitch sends in the ONF space for OpenFlow 1.3.
    2600 ONF_DUP_INSTRUCTION "OFPBIC_DUP_INST",
    4250 ONF_BAD_SET_MASK "OFPBAC_BAD_SET_MASK",
}

impl ErrorCode {
    /// The `type` field of the ERROR message.
    pub fn etype(self) -> u16 {
        match self {
            ErrorCode::Standard { etype, .. } => etype,
            ErrorCode::Experimenter { .. } => OFPET_EXPERIMENTER,
        }
    }

    /// The `code` (or `exp_type`) field of the ERROR message.
    pub fn code(self) -> u16 {
        match self {
            ErrorCode::Standard { code, .. } => code,
            ErrorCode::Experimenter { exp_type, .. } => exp_type,
        }
    }

    /// The spec's name of the code, if it is one this crate knows.
    pub fn name(self) -> Option<&'static str> {
        match self {
            ErrorCode::Standard { etype, code } => code_name(etype, code),
            ErrorCode::Experimenter {
                exp_type,
                experimenter: ONF_EXPERIMENTER_ID,
            } => bundle_code_name(exp_type),
            ErrorCode::Experimenter { .. } => None,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (*self, self.name()) {
            (ErrorCode::Standard { etype, .. }, Some(name)) => {
                write!(f, "{}/{name}", type_name(etype).unwrap_or("OFPET_?"))
            }
            (ErrorCode::Standard { etype, code }, None) => match type_name(etype) {
                Some(t) => write!(f, "{t}/code {code}"),
                None => write!(f, "type {etype}/code {code}"),
            },
            (ErrorCode::Experimenter { .. }, Some(name)) => write!(f, "OFPET_EXPERIMENTER/{name}"),
            (
                ErrorCode::Experimenter {
                    exp_type,
                    experimenter,
                },
                None,
            ) => {
                write!(
                    f,
                    "OFPET_EXPERIMENTER/exp_type {exp_type} experimenter {experimenter:#010x}"
                )
            }
        }
    }
}

/// Why some bytes could not be decoded (or a value could not be accepted): the error the spec
/// says to send back, and a short human reason for logs.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
#[error("{code}: {reason}")]
pub struct DecodeError {
    pub code: ErrorCode,
    pub reason: &'static str,
}

impl DecodeError {
    pub const fn new(code: ErrorCode, reason: &'static str) -> Self {
        DecodeError { code, reason }
    }
}

/// Shorthand for `Err(DecodeError::new(code, reason))`.
pub(crate) fn fail<T>(code: ErrorCode, reason: &'static str) -> Result<T, DecodeError> {
    Err(DecodeError::new(code, reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers_come_from_one_table() {
        assert_eq!(
            ErrorCode::BAD_MATCH_BAD_PREREQ,
            ErrorCode::Standard { etype: 4, code: 9 }
        );
        assert_eq!(
            ErrorCode::BAD_MATCH_BAD_PREREQ.to_string(),
            "OFPET_BAD_MATCH/OFPBMC_BAD_PREREQ"
        );
        assert_eq!(ErrorCode::BUNDLE_BAD_ID.etype(), 0xffff);
        assert_eq!(ErrorCode::BUNDLE_BAD_ID.code(), 2302);
        assert_eq!(
            ErrorCode::BUNDLE_BAD_ID.to_string(),
            "OFPET_EXPERIMENTER/OFPBFC_BAD_ID"
        );
        assert_eq!(
            ErrorCode::Standard { etype: 1, code: 99 }.to_string(),
            "OFPET_BAD_REQUEST/code 99"
        );
        assert_eq!(code_name(13, 5), Some("OFPTFFC_EPERM"));
        assert_eq!(type_name(14), None);
    }
}
