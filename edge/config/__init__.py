"""The vehicle's one TOML file: one module per section, the loader (`loader`, strict pydantic,
unknown keys rejected), path checks (`paths`) and `roadpatrol config check` (`check`)."""
