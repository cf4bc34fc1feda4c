"""The domain: sessions, execution, workspace, packages, health, history, safety."""
