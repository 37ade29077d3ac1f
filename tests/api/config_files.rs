//! Configuration files shipped in the repository stay valid.

use m365_gateway::Config;

#[test]
fn the_example_config_in_docs_is_valid() {
    let config = Config::from_toml(include_str!("../../docs/example.toml")).expect("parses");
    config.validate().expect("validates");
    assert!(!config.uses_emulator());
    assert!(config.production);
    assert_eq!(config.callers.len(), 3);
}
