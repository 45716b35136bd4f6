"""The app's page: layout (one module per tab), handlers (one module per tab) and the wiring of
events between them. `build.build_app` puts it together; the top-level app.py launches it."""
