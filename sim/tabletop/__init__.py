"""The tabletop world: a Panda-kinematics arm, language-conditioned tasks, scripted experts.

    from sim.tabletop.env import TabletopEnv        # or sim.make("PickUp")
    from sim.tabletop.experts import make_expert

Modules, bottom up: ``arm`` (MJCF of the arm and gripper), ``scene`` (table, objects, cameras),
``ik`` (damped least-squares IK), ``tasks`` (episode sampling, instructions, success
predicates), ``env`` (the Gymnasium env), ``experts`` (scripted demonstrations).
"""
