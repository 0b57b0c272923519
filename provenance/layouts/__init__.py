"""Layouts the same weights circulate in, mapped onto a reference's names so they compare tensor by tensor."""
