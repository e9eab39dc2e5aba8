"""The built-in plugins: descent rules, learning-rate schedules and problems."""
