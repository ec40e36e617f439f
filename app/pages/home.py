"""Home page: what MTL Lab is and what is available."""

from __future__ import annotations

import streamlit as st

st.title("MTL Lab")
st.write(
    "Analyse how tasks relate in multi-task learning: pick a task suite, a sharing strategy and "
    "balancing methods, train in the background, and watch gradient conflicts and transfer."
)
st.info("The dashboard pages are being built. Meanwhile the engine runs headless: `python -m mtl_core --help`.")
