"""policyqa front ends: citations, the command line and the Gradio app."""
