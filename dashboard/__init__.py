"""The Streamlit dashboard: entrypoint (app.py), login, shared widgets, charts and cached reads."""
