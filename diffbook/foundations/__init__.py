"""Part I's teaching helpers: the processes, closed forms, bounds and evaluations that Chapters 1–8 use to
*check* the theory (Brownian paths and SDE errors, ODE convergence orders, closed-form flows, SymPy
identities, forward marginals, the DDPM chain and its bound, score matching and flow matching on exact
mixtures, PF-ODE likelihoods, sampler sweeps).

They are built on the engine (``diffbook.schedules``, ``sde``, ``param``, ``samplers``, ``toy``, ``ode``…)
and are not part of it: a model in Part II never needs them. Import them explicitly, e.g.
``from diffbook.foundations import brownian``.
"""
