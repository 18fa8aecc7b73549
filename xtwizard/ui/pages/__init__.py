"""The wizard's pages: thin views over migration/ (DESIGN.md "Pages are thin")."""
