"""The entity graph: every entity and relation of the catalog as a networkx multigraph.

* ``model``: the graph and its storage rules (forward edges, placeholders, replays);
* ``store``: one per process, kept in step with the database by generation;
* ``queries``: dependencies, impact, paths, cycles, ownership, centrality, subgraphs;
* ``export``: node-link JSON, DOT, GraphML, Mermaid, SVG;
* ``catalog_graph``: the walk of Backstage's catalog-graph backend plugin;
* ``service``: all of the above behind one validating interface (API and CLI);
* ``cli``: the ``catalog`` graph commands; ``measure`` and ``memory``: benchmark figures.

Nothing is imported here, so ``catalog`` commands that do not touch the graph do
not pay for networkx.
"""
