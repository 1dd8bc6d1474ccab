"""runner: actions, the repository's own GitHub Actions runners: dispatch, callbacks, and the runner side."""
