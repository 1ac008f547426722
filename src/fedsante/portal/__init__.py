"""The public portal: server-rendered pages in French (English under /en), their JSON twins, the objection form."""
