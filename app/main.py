"""MTL Lab — the Streamlit entry point: sets the page and the navigation, nothing else."""

from __future__ import annotations

import streamlit as st

st.set_page_config(page_title="MTL Lab", page_icon="🧪", layout="wide")

home = st.Page("pages/home.py", title="Home", icon="🏠", default=True)
navigation = st.navigation([home])
navigation.run()
