"""Placeholder home page until the overview page lands: loads the bundled data and a model."""

import streamlit as st

from kdcore.data import load_mnist
from kdcore.models import build_model

st.title("Knowledge distillation, explained")
data = load_mnist()
model = build_model("mlp-800")
st.write(
    f"Bundled MNIST: {len(data.y_train):,} training and {len(data.y_test):,} test images. "
    f"Student 784-800-800-10: {model.num_params():,} parameters."
)
