"""The ground floor: settings and user-facing errors, which every layer may use and which use no layer."""
