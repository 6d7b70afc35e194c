"""Page handlers, one module per page; console/app.py lists their routes."""
