"""The web app: every resource's routes, keys, errors, hostile input, the dashboard in a browser."""
