# The molecule scenario of the build_host role builds this: the local base image plus one file.
FROM madengine/base:bookworm
RUN echo "built by the build_host molecule scenario" > /opt/mol_build_host.txt
