//! Unit tests of the frame generator: reproducible from its seed, bounded
//! in length, and its built frames parse as what they are.

use super::*;

#[test]
fn the_generator_is_reproducible_and_bounded() {
    let vocabulary = Vocabulary {
        v4: vec![[192, 0, 2, 1]],
        v6: vec![doc_v6(1)],
        ports: vec![80],
        endpoints: vec![Endpoint {
            address: IpAddr::from([203, 0, 113, 10]),
            port: 80,
            protocol: 6,
        }],
    };
    let seeds = vec![vec![0u8; 60]];
    let mut first = Generator::new(7, vocabulary.clone(), seeds.clone());
    let mut second = Generator::new(7, vocabulary, seeds);
    for _ in 0..2000 {
        let frame = first.frame();
        assert!(frame.len() <= MAX_FRAME_LEN);
        assert_eq!(frame, second.frame());
    }
}

#[test]
fn built_frames_parse_as_what_they_are() {
    let mut generator = Generator::new(3, Vocabulary::default(), Vec::new());
    let mut parsed = 0;
    for _ in 0..1000 {
        let frame = generator.built();
        if xdpath_core::parse(&xdpath_core::SlicePacket::new(&frame)).is_ok() {
            parsed += 1;
        }
    }
    // Built frames are well formed but for deliberate length mistakes
    // in some extension headers.
    assert!(parsed > 900, "{parsed} of 1000 built frames parse");
}
