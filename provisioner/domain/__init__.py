"""The pure domain: identities, the plan model, the planner, outcomes and wording. Standard library only;
imported from every layer."""
