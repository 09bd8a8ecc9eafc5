"""controller: the Docker adapter, the pure planner, the executor, the loop and the CLI."""
