"""Private helpers every wing uses: one place each, never copied."""
