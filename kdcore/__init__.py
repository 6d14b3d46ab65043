"""kdcore: the PyTorch core of the knowledge-distillation explainer. Never imports Streamlit."""

__version__ = "0.1.0"
