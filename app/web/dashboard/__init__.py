"""The dashboard behind GitHub sign-in: tasks, live logs, diffs, Cancel/Retry, keys and usage (`/dashboard`)."""
