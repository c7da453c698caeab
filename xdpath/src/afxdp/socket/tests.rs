//! Unit tests of the socket options' checks.

use super::*;

#[test]
fn options_are_checked() {
    assert!(XskOptions::default().validate().is_ok());
    for (options, field) in [
        (
            XskOptions {
                frame_size: 1000,
                ..XskOptions::default()
            },
            "frame_size",
        ),
        (
            XskOptions {
                frame_size: 1024,
                ..XskOptions::default()
            },
            "frame_size",
        ),
        (
            XskOptions {
                frame_size: 1 << 20,
                ..XskOptions::default()
            },
            "frame_size",
        ),
        (
            XskOptions {
                frames: 1,
                ..XskOptions::default()
            },
            "frames",
        ),
        (
            XskOptions {
                ring_size: 1000,
                ..XskOptions::default()
            },
            "ring_size",
        ),
        (
            XskOptions {
                ring_size: 0,
                ..XskOptions::default()
            },
            "ring_size",
        ),
    ] {
        match options.validate() {
            Err(XskError::InvalidOptions { option, .. }) => assert_eq!(option, field),
            other => panic!("{options:?}: {other:?}"),
        }
    }
}

#[test]
fn a_missing_interface_is_named() {
    for name in [
        "xdpath-nosuch0",
        "",
        "a-name-far-too-long-for-linux",
        "nul\0",
    ] {
        match XskSocket::open(name, 0, XskOptions::default()) {
            Err(XskError::InterfaceNotFound { interface }) => assert_eq!(interface, name),
            other => panic!("{name:?}: {other:?}"),
        }
    }
}
