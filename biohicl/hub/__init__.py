"""Publishing to the Hugging Face Hub: ``model_card`` (the card's data and its rendering), ``publish`` (the one
upload seam: repo folder, safety checks, one commit through an injected ``HfApi``) and ``manifest`` (release
manifests, one reviewable YAML file per published artifact)."""
