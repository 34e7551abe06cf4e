#!/usr/bin/env bash
# Fetches an Apache Kafka broker's jars (KRaft mode: broker, controller and
# the storage tool that formats a log dir) from Maven Central into
# .cache/kafka/<version>/libs, for test/helpers/kafka-server.ts. There is no
# Kafka package in Debian and the machines reach Maven Central only, so
# Maven resolves kafka_2.13 and its runtime dependencies through a throwaway
# pom. Does nothing when the jars are already there. Prints the libs folder.
#
#   bash scripts/fetch-kafka.sh            # KAFKA_VERSION=4.1.1 by default
set -euo pipefail
cd "$(dirname "$0")/.."

version="${KAFKA_VERSION:-4.1.1}"
dest="$PWD/.cache/kafka/$version"
libs="$dest/libs"
# Written last, so a fetch that died half way is redone.
marker="$dest/.complete"

if [ -f "$marker" ]; then
  echo "$libs"
  exit 0
fi
command -v mvn >/dev/null 2>&1 || { echo "fetch-kafka: mvn not found (apt-get install maven)" >&2; exit 1; }
command -v java >/dev/null 2>&1 || { echo "fetch-kafka: java not found (apt-get install openjdk-17-jre-headless)" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# kafka_2.13 brings the broker (kafka.Kafka), kafka.tools.StorageTool and
# the server modules. Its poms name SLF4J 1.7 and no logging backend; the
# release tarball ships SLF4J 2 with log4j2, and so do we, so the broker
# logs through the log4j2 file the helper writes (to a file, not stdout).
cat >"$work/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>switchboard.test</groupId>
  <artifactId>fetch-kafka</artifactId>
  <version>0</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>$version</version>
    </dependency>
    <dependency>
      <groupId>org.slf4j</groupId>
      <artifactId>slf4j-api</artifactId>
      <version>2.0.16</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j2-impl</artifactId>
      <version>2.24.3</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-core</artifactId>
      <version>2.24.3</version>
    </dependency>
  </dependencies>
</project>
EOF

rm -rf "$dest"
mkdir -p "$libs"
mvn -q -B -Dstyle.color=never -f "$work/pom.xml" dependency:copy-dependencies \
  -DincludeScope=runtime -DoutputDirectory="$libs" >&2
touch "$marker"
echo "$libs"
