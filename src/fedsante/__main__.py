from fedsante.cli import app

app(prog_name="fedsante")
