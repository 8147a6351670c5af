"""Who may call Córtex and how much: Host and Origin checks, API keys, per-key limits."""
