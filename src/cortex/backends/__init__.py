"""Model servers Córtex talks to, one module per upstream dialect."""
