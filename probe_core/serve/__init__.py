"""What the app stands on: the ProbeDemo facade (runs, maps, edits, export), the figures and the
score card, the per-session model choice and ZeroGPU support. No gradio import here."""
