"""The Streamlit app: the router (streamlit_app.py) and shared UI parts.

Tensor maths lives in kdcore; nothing here computes on tensors beyond calling it.
"""
