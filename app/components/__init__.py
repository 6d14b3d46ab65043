"""Our own small Streamlit Components (v2): inline HTML, CSS and JS, no external script, so the
app works offline. Each module registers one component and wraps it in one Python function."""
