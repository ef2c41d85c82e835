"""A page with no model: one image (or any file) in, the same out, through Gradio's queue.

`python -m benchmarks.echo_app` (port from GRADIO_SERVER_PORT). benchmarks.serving times it beside
the real app, so what the app adds above Gradio's own round trip can be read off.
"""
from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402


def echo(path: str) -> str:
    return path


with gr.Blocks(analytics_enabled=False) as demo:
    image_in = gr.Image(type="filepath")
    image_out = gr.Image(type="filepath")
    gr.Button("echo").click(echo, image_in, image_out, api_name="echo")
    file_in, file_out = gr.File(type="filepath"), gr.File()
    gr.Button("echo a file").click(echo, file_in, file_out, api_name="echo_file")  # any file (a volume, an archive)

if __name__ == "__main__":
    demo.queue().launch(ssr_mode=False)
