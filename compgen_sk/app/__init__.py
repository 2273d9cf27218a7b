"""The application built on the library: the main job, ``compgen-sk compare``.

:mod:`~compgen_sk.app.compare` trains the methods of
:mod:`~compgen_sk.app.methods` on in-domain data and scores them on held-out
combinations; :mod:`~compgen_sk.app.plotting` draws its figures and
:mod:`~compgen_sk.app.cli` is its command line. The library never imports this
package.
"""
