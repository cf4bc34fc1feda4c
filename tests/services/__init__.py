"""Real services (PostgreSQL, Redis, nginx) started and stopped by the test fixtures."""
