"""Push-T (issue 19): the paper's non-prehensile domain (Tables III-IV).

A generated video of the T-block being pushed to the goal gives a 3D object flow (the normal
flow stage); pushes are chosen by random shooting over contact-making candidates scored by a
learned forward dynamics model (particle, pose) or a heuristic; the Panda executes each push
through IK and the control loop; the camera observes the block again; repeat.

Modules: ``geometry`` (block, goal, initial states, success), ``task`` (the scene for
``SimEnv``), ``env`` (scene + loop camera + floating pusher), ``observe`` (points from RGB-D),
``primitive`` (push + sampler), ``execute`` (Panda pushes), ``models`` (JAX dynamics),
``data``/``train`` (collection, training, held-out errors), ``planner`` (random shooting),
``episode``/``evaluate``/``demo`` (what ``dream2flow pusht`` runs).
"""
