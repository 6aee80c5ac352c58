"""Named experiments (`configs/*.toml`) and the command line that runs them."""
