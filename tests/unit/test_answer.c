/* test_answer.c: predict/'s answer (coco/answer.h), the one writer the
 * daemon and the cluster worker share: the shape SPEC section 5 gives for a
 * classifier and a detector, the caller's order, 6-decimal confidences,
 * boxes rounded to whole pixels and at least 1 wide, "imported" for
 * version 0, and hostile tag names escaped. */
#include "answer.h"
#include "check.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static cJSON *item(const cJSON *o, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    const cJSON *at = o;
    for (char *k = strtok(buf, "."); k && at; k = strtok(NULL, "."))
        at = cJSON_GetObjectItemCaseSensitive(at, k);
    return (cJSON *)at;
}

static void test_tags(void)
{
    answer_tag t[] = {{"cat", 0.9876543f}, {"dog \"big\"\n", 0.0123457f}};
    answer a = {"pets", 3, 640, 480, 0, t, 2, NULL, 0};
    char *text = answer_json(&a);
    CHECK(text != NULL);
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    CHECK(j != NULL);
    CHECK(cJSON_IsString(item(j, "modelVersion")) &&
          strcmp(item(j, "modelVersion")->valuestring, "pets/v3") == 0);
    CHECK(item(j, "metadata.width") && item(j, "metadata.width")->valuedouble == 640);
    CHECK(item(j, "metadata.height") && item(j, "metadata.height")->valuedouble == 480);
    CHECK(item(j, "customModelResult.objectsResult") == NULL);
    const cJSON *v = item(j, "customModelResult.tagsResult.values");
    CHECK(cJSON_GetArraySize(v) == 2);
    const cJSON *first = cJSON_GetArrayItem(v, 0), *second = cJSON_GetArrayItem(v, 1);
    CHECK(first && strcmp(item(first, "name")->valuestring, "cat") == 0);
    CHECK(first && item(first, "confidence")->valuedouble == 0.987654);
    CHECK(second && strcmp(item(second, "name")->valuestring, "dog \"big\"\n") == 0);
    CHECK(second && item(second, "confidence")->valuedouble == 0.012346);
    CHECK(text && strstr(text, "dog \\\"big\\\"\\n") != NULL);
    cJSON_Delete(j);
    free(text);

    /* a multilabel answer with no tag above its threshold: an empty list */
    answer none = {"ml", 0, 60, 70, 0, NULL, 0, NULL, 0};
    text = answer_json(&none);
    j = text ? cJSON_Parse(text) : NULL;
    CHECK(j && strcmp(item(j, "modelVersion")->valuestring, "ml/imported") == 0);
    CHECK(cJSON_IsArray(item(j, "customModelResult.tagsResult.values")) &&
          cJSON_GetArraySize(item(j, "customModelResult.tagsResult.values")) == 0);
    cJSON_Delete(j);
    free(text);
}

static void test_objects(void)
{
    answer_object o[] = {{10.4f, 20.5f, 30.49f, 0.2f, "rbc", 0.5f},
                         {0.0f, 0.0f, 100.0f, 50.6f, "wbc", 0.25f}};
    answer a = {"cells", 12, 800, 600, 1, NULL, 0, o, 2};
    char *text = answer_json(&a);
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    CHECK(j != NULL);
    CHECK(item(j, "customModelResult.tagsResult") == NULL);
    const cJSON *v = item(j, "customModelResult.objectsResult.values");
    CHECK(cJSON_GetArraySize(v) == 2);
    const cJSON *a0 = cJSON_GetArrayItem(v, 0), *a1 = cJSON_GetArrayItem(v, 1);
    CHECK(a0 && strcmp(item(a0, "id")->valuestring, "1") == 0);
    CHECK(a1 && strcmp(item(a1, "id")->valuestring, "2") == 0);
    CHECK(a0 && item(a0, "boundingBox.x")->valuedouble == 10);
    CHECK(a0 && item(a0, "boundingBox.y")->valuedouble == 21);
    CHECK(a0 && item(a0, "boundingBox.w")->valuedouble == 30);
    CHECK(a0 && item(a0, "boundingBox.h")->valuedouble == 1); /* 0.2 px: at least 1 */
    CHECK(a1 && item(a1, "boundingBox.h")->valuedouble == 51);
    const cJSON *tags = a0 ? item(a0, "tags") : NULL;
    CHECK(cJSON_GetArraySize(tags) == 1);
    CHECK(tags && strcmp(item(cJSON_GetArrayItem(tags, 0), "name")->valuestring, "rbc") == 0);
    CHECK(tags && item(cJSON_GetArrayItem(tags, 0), "confidence")->valuedouble == 0.5);
    cJSON_Delete(j);
    free(text);
}

int main(void)
{
    test_tags();
    test_objects();
    return check_report("test_answer");
}
