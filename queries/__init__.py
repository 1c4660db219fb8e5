"""Read-side SQL for the dashboard: one module per area, each query returns plain data frames."""
