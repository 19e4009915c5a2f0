"""OCI images of registered versions (``nbprod image build`` / ``verify``): the Containerfile, its
build context (bundle, pinned environment, a wheel of nbprod) and the checks against the registry."""
