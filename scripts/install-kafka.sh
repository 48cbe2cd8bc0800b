#!/usr/bin/env bash
# Installs Apache Kafka (a single KRaft node) for the Kafka sink's
# integration tests, without Docker: the broker's jars come from Maven
# Central (org.apache.kafka:kafka_2.13 and its runtime dependencies, run on
# Java 17), and Debian's kcat is the tests' consumer. The test fixtures
# write the broker's configuration, format its storage in the test's
# temporary directory and start it as the unprivileged test user on
# 127.0.0.1 (tests/integration/kafka_server.py). Idempotent: with
# everything in place it only checks a marker file.
#
#   scripts/install-kafka.sh          (as root on Debian 12)
#   PGSPOUT_KAFKA_HOME=DIR overrides /var/cache/pgspout-test/kafka
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KAFKA_VERSION=4.1.1
LOG4J_VERSION=2.24.3 # the log4j2 that kafka_2.13 $KAFKA_VERSION depends on
HOME_DIR=$(service_home kafka)
# Bump the suffix whenever the files written below change.
MARKER="$HOME_DIR/installed-$KAFKA_VERSION-files1"

already_installed "$MARKER" "$HOME_DIR/lib/kafka_2.13-$KAFKA_VERSION.jar" \
    "$HOME_DIR/log4j2.properties" && have_commands kcat && exit 0

have_commands javac mvn || apt_install openjdk-17-jdk-headless maven
have_commands kcat || apt_install kcat

mkdir -p "$HOME_DIR"
# log4j-slf4j-impl routes the broker's slf4j logging to log4j2, so the
# broker's log (warnings and its start-up line) lands in the test's log
# file instead of nowhere.
cat >"$HOME_DIR/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>pgspout.test</groupId>
  <artifactId>kafka-broker</artifactId>
  <version>1</version>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>$KAFKA_VERSION</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>$LOG4J_VERSION</version>
    </dependency>
  </dependencies>
</project>
POM

log "fetching kafka_2.13 $KAFKA_VERSION and its dependencies (~45 MB)"
rm -rf "$HOME_DIR/lib.new"
mvn -q -B -f "$HOME_DIR/pom.xml" -Dmaven.repo.local="$HOME_DIR/m2" \
    dependency:copy-dependencies -DoutputDirectory="$HOME_DIR/lib.new" >&2
rm -rf "$HOME_DIR/lib" "$HOME_DIR/m2"
mv "$HOME_DIR/lib.new" "$HOME_DIR/lib"

# Warnings and errors, plus the line saying the broker started, to
# standard output (the fixture's log file).
cat >"$HOME_DIR/log4j2.properties" <<'PROPERTIES'
status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.out.ref = out
logger.server.name = kafka.server.KafkaRaftServer
logger.server.level = info
PROPERTIES

java -cp "$HOME_DIR/lib/*" kafka.tools.StorageTool random-uuid >/dev/null ||
    { log "the Kafka storage tool does not run"; exit 1; }
mark_installed "$HOME_DIR" "$MARKER"
