"""The run's private git repository: fetch, snapshot the workspace as plain files, commit nothing the agent controls."""
