"""Gradient playground: two or three task gradients set by sliders, and what every gradient method makes
of them. The address holds the configuration (``?d=2&n=2&a1=10&l1=1&a2=135&l2=2``), so a shared link
restores it."""

from __future__ import annotations

import pandas as pd
import streamlit as st
from services.playground import (
    PLAYGROUND_DEFAULTS,
    default_methods,
    gradient_methods,
    playground,
    playground_query,
    playground_state,
    playground_vectors,
)
from services.text import engine_message
from state import init_state
from views._widgets import figure_downloads

from mtl_core import figures

init_state()
st.title("Gradient playground")
st.markdown(
    "Two or three tasks pull the shared weights in the directions of their gradients **g₁, g₂, g₃** (grey "
    "arrows). A balancing method turns them into one update **d** (coloured arrows). A step along d lowers "
    "task i's loss when **d·gᵢ > 0** and raises it when d·gᵢ < 0 (to first order). The green area (2-D) holds "
    "the directions that lower **every** loss; when the gradients conflict, the plain sum can point out of "
    "it. Move the sliders and watch which methods keep their update inside."
)

#: Widget keys (stable, for AppTest); the session keys of the last address written, of the last
#: state (widget values are dropped while another page is shown) and of the warnings to show.
DIM, COUNT, METHODS = "pg_d", "pg_n", "pg_methods"
LAST_QUERY = "pg_last_query"
SAVED_STATE = "pg_state"
WARNINGS = "pg_warnings"


def angle_key(i: int) -> str:
    return f"pg_a{i}"


def length_key(i: int) -> str:
    return f"pg_l{i}"


def elevation_key(i: int) -> str:
    return f"pg_e{i}"


_ADDRESS_KEYS = set(PLAYGROUND_DEFAULTS) | {"m"}


def _figure_caption(dimension: int, common_descent: bool) -> str:
    text = ("Grey: the task gradients. Coloured: each method's update d (hover for its cosine with every "
            "gradient); a ring at the origin is an update of length zero, and \"(= pcgrad)\" in the legend "
            "marks an arrow hidden under another. ")
    if dimension == 3:
        text += "Translucent: the planes d·gᵢ = 0; a direction on the far side of one raises that task's loss. "
    elif common_descent:
        text += "Green: the directions d with d·gᵢ > 0 for every task, where a step lowers every loss. "
    if not common_descent:
        text += ("**No direction lowers every loss here:** the gradients surround the origin (0 is a weighted "
                 "average of them), so any non-zero update raises some task's loss or at best leaves one unchanged.")
    return text


def _address() -> dict[str, str]:
    return {key: value for key, value in st.query_params.to_dict().items() if key in _ADDRESS_KEYS}


def _apply(state: dict) -> None:
    """Put a playground state into the widgets' session state (before they are drawn)."""
    st.session_state[DIM] = int(state["d"])
    st.session_state[COUNT] = int(state["n"])
    for i in (1, 2, 3):
        st.session_state[angle_key(i)] = int(state[f"a{i}"])
        st.session_state[length_key(i)] = float(state[f"l{i}"])
        st.session_state[elevation_key(i)] = int(state[f"e{i}"])
    st.session_state[METHODS] = list(state["methods"])


def _pick(methods: list[str]) -> None:
    st.session_state[METHODS] = list(methods)


with st.spinner("Loading the methods…"):
    method_names = [m["name"] for m in gradient_methods()]

# The address is the source of truth when it changed outside this page (a shared link); coming back
# from another page (which clears the address) restores the last configuration of this session.
address = _address()
if address and address != st.session_state.get(LAST_QUERY):
    state, problems = playground_state(address)
    _apply(state)
    st.session_state[WARNINGS] = problems
elif DIM not in st.session_state:
    _apply(st.session_state.get(SAVED_STATE) or playground_state({})[0])
for problem in st.session_state.pop(WARNINGS, []) or []:
    st.warning(f"{engine_message(problem)} The rest of the link was applied.", icon=":material/link_off:")

controls, picture = st.columns([1, 2])
with controls:
    top = st.columns(2)
    top[0].radio("Space", [2, 3], format_func=lambda d: f"{d}-D", key=DIM, horizontal=True)
    top[1].radio("Gradients", [2, 3], key=COUNT, horizontal=True)
    dimension, count = int(st.session_state[DIM]), int(st.session_state[COUNT])
    names = [f"g{'₁₂₃'[i - 1]}" for i in (1, 2, 3)]
    for i in range(1, count + 1):
        st.markdown(f"**{names[i - 1]}**")
        row = st.columns(3 if dimension == 3 else 2)
        row[0].slider("angle (°)", -180, 180, step=1, key=angle_key(i), help="Direction in the x₁–x₂ plane.")
        row[1].slider("length", 0.0, 3.0, step=0.1, key=length_key(i), help="The gradient's norm.")
        if dimension == 3:
            row[2].slider("elevation (°)", -90, 90, step=1, key=elevation_key(i), help="Angle above the x₁–x₂ plane.")
    st.multiselect("Methods shown", method_names, key=METHODS,
                   help="Every gradient method of the engine; equal weights (the plain sum) is always shown.")
    picks = st.columns(2)
    picks[0].button(f"Show all {len(method_names)}", key="pg_all_methods", on_click=_pick, args=(method_names,),
                    disabled=sorted(st.session_state[METHODS]) == sorted(method_names))
    picks[1].button("Back to the default", key="pg_default_methods", on_click=_pick, args=(default_methods(),),
                    disabled=list(st.session_state[METHODS]) == default_methods(),
                    help=f"{', '.join(default_methods())} and the plain sum: methods whose arrows differ visibly.")

state = {"d": dimension, "n": count, "methods": list(st.session_state[METHODS])}
for i in (1, 2, 3):
    state[f"a{i}"] = int(st.session_state[angle_key(i)])
    state[f"l{i}"] = float(st.session_state[length_key(i)])
    state[f"e{i}"] = int(st.session_state[elevation_key(i)])

# Write the configuration to the address (only what changed), so that the link can be shared.
query = playground_query(state)
if query != address:
    for key in set(address) - set(query):
        del st.query_params[key]
    for key, value in query.items():
        if address.get(key) != value:
            st.query_params[key] = value
st.session_state[LAST_QUERY] = query
st.session_state[SAVED_STATE] = state

gradients = playground_vectors(state)
result = playground(gradients, state["methods"] or None)
with picture:
    # 2-D: shade where every task improves (it teaches what a good update does); the conflict
    # half-planes of three gradients would cover almost the whole plane. 3-D: the planes d·gᵢ = 0.
    figure = figures.gradient_arrows(gradients, result["outputs"], result["names"], show_conflict=dimension == 3,
                                     show_agreement=dimension == 2)
    figure.update_layout(height=540)
    st.plotly_chart(figure, key="pg_figure",
                    config={"displaylogo": False})
    figure_downloads(figure, "mtl_playground", "pg_figure")
    st.caption(_figure_caption(dimension, result["common_descent"]))

st.subheader("How the gradients relate")
rows = []
labels = result["names"]


def _relation(cosine: float | None) -> str:
    """A pair's relation in words; orthogonal gradients (|cos| < 1e-9) neither agree nor conflict."""
    if cosine is None:
        return "—"
    if abs(cosine) < 1e-9:
        return "orthogonal (cos = 0)"
    return "conflict (cos < 0)" if cosine < 0 else "agree (cos > 0)"


for i in range(count):
    for j in range(i + 1, count):
        cosine = result["cosines"][i][j]
        rows.append({
            "pair": f"{labels[i]}, {labels[j]}",
            "cosine": cosine,
            "relation": _relation(cosine),
        })
st.dataframe(pd.DataFrame(rows), hide_index=True)

st.subheader("What each method did")
for method, sentence in result["sentences"].items():
    if method in result["errors"]:
        st.markdown(f"- **{method}** — :red[{sentence}]")
    else:
        st.markdown(f"- **{method}** — {sentence}")
st.caption("PCGrad, GradVac and GradDrop draw random numbers; the playground fixes their seed, so a link "
           "always shows the same arrows. Some methods return a sum of (adjusted) gradients, others a mean: "
           "compare directions more than lengths.")
st.markdown("**Share this configuration:** copy the address bar, or this link's query part:")
st.code("?" + "&".join(f"{key}={value}" for key, value in query.items()), language=None)
